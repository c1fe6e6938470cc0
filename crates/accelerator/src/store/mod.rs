//! Where the accelerator keeps its records: users (with their published public
//! keys and recovery codes), sessions, login challenges, kv values (those stored
//! under plaintext names marked legacy until renamed) and each user's kv change log;
//! shards, spaces, members, invites, files and the shards each file references; each
//! space's key epochs, its members' roster entries and sealed keys, and its links.
//!
//! The records are five async traits, one per domain — [`Accounts`], [`Kv`],
//! [`Spaces`], [`SpaceKeys`], [`Files`] — which a backend implements together
//! ([`Records`]).
//! [`sqlite::SqliteRecords`] is the embedded default. The same cases run against
//! every backend (`tests/store/`), so a behaviour cannot differ between them.
//!
//! Every kv method takes the user id first and every query is keyed by it, so one
//! user can never reach another's values. Every space method takes the acting user
//! and checks their role inside its own transaction, so a member removed a moment
//! ago cannot slip a write in between a check and the write.
//!
//! Shard bytes are not records: they live in a [`shards::ShardStore`]
//! ([`objects::ObjectShards`]: a directory or an S3-compatible bucket). The `shards` records say which addresses are
//! stored, how large each is and when it was last put, which is what metering and
//! the collector ([`keeper`]) need.

pub mod keeper;
pub mod objects;
pub mod postgres;
pub mod shards;
pub mod sqlite;

use std::ops::Range;
use std::sync::Arc;

use coffer_core::account::KdfParams;
use coffer_core::names::looks_sealed;
use coffer_core::proto::storage::{Member, Role};
use coffer_core::proto::{KvKeyRequest, KvRename, KvRenameResponse, MAX_LEGACY_PAGE_VALUE_BYTES};
use coffer_core::shard::ShardAddress;

pub use async_trait::async_trait;

/// Creates `dir` if needed and makes it accessible to this user only (0700 on
/// Unix): the database and the shards inside are nobody else's business.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Options that create a file readable and writable by this user only (0600 on Unix).
pub fn private_file_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Makes an existing file private (0600 on Unix); a missing one is fine.
pub fn make_private(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Sign-up with a username that already exists.
    UsernameTaken,
    /// The account has published another public key: it never changes.
    KeyPublished,
    /// The account has no published public key, which entering a roster needs
    /// (creating or joining a space, [`SpaceKeys::enter_roster`]).
    NoPublicKey,
    /// A write named another key epoch than the space's current one.
    StaleEpoch {
        /// The space's current epoch.
        current: u32,
    },
    /// A member left or was removed and the space's key has not been rotated since:
    /// no file may be committed and no invite made.
    RotationDue,
    /// A rotation to another epoch than the current one plus one (another member
    /// rotated first).
    NotNextEpoch {
        /// The space's current epoch.
        current: u32,
    },
    /// A rotation whose members are not exactly those with a roster entry.
    RosterChanged,
    /// A rotation by a member without a roster entry.
    NotInRoster,
    /// A rotation while none is due: the space's key changes only when a member
    /// has left or been removed since the last one.
    NoRotationDue,
    /// A space created with an id that is taken.
    SpaceTaken,
    /// A file committed with an id that is taken in its space.
    FileTaken,
    /// The acting user is not a member of the space, or the space does not exist
    /// (the two are not told apart, so outsiders learn nothing).
    NotMember,
    /// The acting user is a member, but the operation needs a higher role.
    RoleTooLow {
        /// The lowest role allowed to do it.
        needed: Role,
    },
    /// The space would be left without an owner while it still has members.
    LastOwner,
    /// The user to remove is not a member of the space.
    NoSuchMember,
    /// A commit listed shards that are not stored.
    MissingShards {
        /// Distinct listed shards not stored.
        missing: usize,
        /// Distinct shards listed.
        listed: usize,
    },
    /// A commit's draft was withdrawn while it was under way: the space went, or the
    /// committer lost the right to write in it.
    CommitWithdrawn,
    /// A commit's shards hold more bytes than its declared size needs.
    OverDeclared {
        /// Bytes the listed shards hold.
        stored: u64,
        /// The most a file of the declared size needs.
        bound: u64,
    },
    /// A write would take the space or the user past a limit.
    QuotaExceeded {
        /// Which limit.
        limit: Quota,
        /// Bytes counted against it now.
        used: u64,
        /// Bytes the refused write would have added.
        adding: u64,
        /// The limit.
        quota: u64,
    },
    /// No invite of this space has the presented secret (or no such space).
    InviteInvalid,
    /// The invite exists but has expired.
    InviteExpired,
    /// The invite exists but has been used as often as it allows.
    InviteUsedUp,
    /// The space has as many live invites as it may.
    TooManyInvites {
        /// The limit.
        max: u64,
    },
    /// A list's `after` is not a cursor this store handed out.
    BadCursor,
    /// The database failed; the text is for the log, not for clients.
    Backend(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::UsernameTaken => f.write_str("username taken"),
            StoreError::KeyPublished => f.write_str("another public key published"),
            StoreError::NoPublicKey => f.write_str("no public key published"),
            StoreError::StaleEpoch { current } => write!(f, "the space is at epoch {current}"),
            StoreError::RotationDue => f.write_str("rotation due"),
            StoreError::NotNextEpoch { current } => write!(f, "the space is at epoch {current}, not the one before"),
            StoreError::RosterChanged => f.write_str("the roster changed"),
            StoreError::NotInRoster => f.write_str("not in the roster"),
            StoreError::NoRotationDue => f.write_str("no rotation due"),
            StoreError::SpaceTaken => f.write_str("space id taken"),
            StoreError::FileTaken => f.write_str("file id taken"),
            StoreError::NotMember => f.write_str("not a member"),
            StoreError::RoleTooLow { needed } => write!(f, "needs role {}", role_name(*needed)),
            StoreError::LastOwner => f.write_str("last owner"),
            StoreError::NoSuchMember => f.write_str("no such member"),
            StoreError::MissingShards { missing, listed } => write!(f, "{missing} of {listed} shards missing"),
            StoreError::QuotaExceeded { limit, used, adding, quota } => {
                write!(f, "{limit:?} quota exceeded: {used} + {adding} > {quota}")
            }
            StoreError::InviteInvalid => f.write_str("invite invalid"),
            StoreError::InviteExpired => f.write_str("invite expired"),
            StoreError::InviteUsedUp => f.write_str("invite used up"),
            StoreError::BadCursor => f.write_str("bad cursor"),
            StoreError::TooManyInvites { max } => write!(f, "{max} live invites"),
            StoreError::OverDeclared { stored, bound } => write!(f, "shards hold {stored} > {bound} bytes"),
            StoreError::CommitWithdrawn => f.write_str("commit withdrawn"),
            StoreError::Backend(detail) => write!(f, "database: {detail}"),
        }
    }
}

/// A file or space that was deleted and whose references are being dropped a
/// [`Files::step`] at a time: it is invisible already, its bytes refunded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Withdrawn {
    /// A deleted file, or an abandoned draft.
    File {
        /// Its space.
        space_id: String,
        /// Its id there.
        file_id: String,
    },
    /// A space its last member left, with every file in it.
    Space {
        /// Its id.
        space_id: String,
    },
}

/// What one step of [`Files::unwind`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unwound {
    /// Shards that no file references any more: the caller frees them.
    pub freed: Vec<ShardAddress>,
    /// Whether nothing is left of it.
    pub done: bool,
}

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The previous page's `next`, or `None` for the first page.
    pub after: Option<String>,
    /// Entries wanted (at least 1).
    pub limit: usize,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The entries, in the list's order.
    pub items: Vec<T>,
    /// The cursor to ask for the next page with; `None` on the last page.
    pub next: Option<String>,
}

/// The first `limit` of `rows` (each with its cursor), and the cursor of the last
/// one kept if more followed: a backend asks for `limit + 1` rows to know.
pub fn paged<T>(mut rows: Vec<(T, String)>, limit: usize) -> Page<T> {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(_, cursor)| cursor.clone())
    } else {
        None
    };
    Page { items: rows.into_iter().map(|(item, _)| item).collect(), next }
}

/// Where a page of a list ordered by (time, row number) starts: after the position
/// its cursor `"{ms}.{n}"` names, or before everything.
pub fn position(page: &PageRequest) -> Result<(i64, i64), StoreError> {
    let Some(after) = &page.after else { return Ok((i64::MIN, i64::MIN)) };
    let (ms, n) = after.split_once('.').ok_or(StoreError::BadCursor)?;
    Ok((ms.parse().map_err(|_| StoreError::BadCursor)?, n.parse().map_err(|_| StoreError::BadCursor)?))
}

/// The two limits on stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Shard bytes of a space's committed files ([`crate::Config::space_quota_bytes`]).
    Space,
    /// Everything one user stores ([`crate::Config::user_allowance_bytes`]): kv
    /// values, uncommitted uploads, the files they committed (shards, record and
    /// references), the spaces they created.
    User,
}

/// The limits a write is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Bytes of shards a space's files may hold.
    pub space_bytes: u64,
    /// Bytes a user may store in all.
    pub user_bytes: u64,
}

impl Quotas {
    /// No limit at all (tests of other behaviour).
    pub const NONE: Quotas = Quotas { space_bytes: u64::MAX, user_bytes: u64::MAX };
}

/// Invites of one space that may be live (unexpired) at once: each is a row an
/// owner adds for free, so their number is bounded rather than metered.
pub const MAX_LIVE_INVITES: u64 = 1000;

/// What one kv row costs besides its names and value: keys, index entries, the row.
pub const KV_ROW_BYTES: u64 = 64;
/// What one file record costs besides its sealed record.
pub const FILE_ROW_BYTES: u64 = 128;
/// What each shard a file lists costs (its reference row).
pub const SHARD_REF_BYTES: u64 = 64;
/// What one space costs besides its sealed name.
pub const SPACE_ROW_BYTES: u64 = 128;

/// The bytes a kv value stores (what its owner is charged, and what the log keeps).
pub fn value_bytes(value: &StoredValue) -> u64 {
    match value {
        StoredValue::Sealed(bytes) => bytes.len() as u64,
        StoredValue::Plain { json, mac } => (json.len() + mac.len()) as u64,
    }
}

/// What a kv entry costs its owner.
pub fn kv_cost(collection: &str, id: &str, value: &StoredValue) -> u64 {
    (collection.len() + id.len()) as u64 + value_bytes(value) + KV_ROW_BYTES
}

/// Whether [`Kv::kv_set`] writes its key as legacy: when its collection or its id
/// lacks a sealed name's shape ([`looks_sealed`]). Such a key was written by an SDK
/// from before sealed names, still at work after the upgrade: as a legacy key, the
/// account's next SDK with sealed names moves it ([`Kv::kv_rename`]) instead of
/// leaving it stranded under names it never reads. A key that is legacy already
/// stays legacy, whatever its names (both backends write `legacy_name OR` this).
pub fn set_is_legacy(collection: &str, id: &str) -> bool {
    !(looks_sealed(collection) && looks_sealed(id))
}

/// A legacy key ([`Kv::kv_legacy`]) and its value, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyKey {
    /// Its collection, under the name an SDK sent in the clear.
    pub collection: String,
    /// Its id, likewise.
    pub id: String,
    /// Its value.
    pub value: StoredValue,
}

/// A page of [`Kv::kv_legacy`] in the making. Both backends read the user's legacy
/// keys in order and [`LegacyPage::push`] each until it says stop, so their pages
/// agree: at most `limit` keys, the first always, then each next one while the
/// [`value_bytes`] of the keys after the first stay within
/// [`MAX_LEGACY_PAGE_VALUE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyPage {
    keys: Vec<LegacyKey>,
    limit: usize,
    /// [`value_bytes`] of the keys after the first.
    past_first: u64,
}

impl LegacyPage {
    /// An empty page of at most `limit` keys.
    pub fn new(limit: usize) -> Self {
        LegacyPage { keys: Vec::new(), limit, past_first: 0 }
    }

    /// Adds the next key in order if it fits. Returns whether to read on: `false`
    /// once the page is full, or when this key did not fit (it opens a later page:
    /// a page is always the first of the keys left).
    pub fn push(&mut self, key: LegacyKey) -> bool {
        if self.keys.len() >= self.limit {
            return false;
        }
        if !self.keys.is_empty() {
            let past_first = self.past_first.saturating_add(value_bytes(&key.value));
            if past_first > MAX_LEGACY_PAGE_VALUE_BYTES as u64 {
                return false;
            }
            self.past_first = past_first;
        }
        self.keys.push(key);
        self.keys.len() < self.limit
    }

    /// The page's keys, in order.
    pub fn into_keys(self) -> Vec<LegacyKey> {
        self.keys
    }
}

/// What [`Kv::kv_rename`] does with one rename. Both backends decide with
/// [`RenameStep::of`], so they agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameStep {
    /// `from` is not a legacy key of the user (absent, or stored since sealed
    /// names): nothing changes.
    Skip,
    /// `to` is `from`: the key only stops being legacy.
    Unmark,
    /// A key is stored at `to` already: `from` goes, with its change-log entry, and
    /// its cost is refunded; the key at `to` stands.
    Drop,
    /// `from` moves to `to`, no longer legacy, with its change-log entry (same
    /// sequence number), and is charged the difference in [`kv_cost`] its new names
    /// make.
    Move,
}

impl RenameStep {
    /// The step for `rename`, and the change it makes in what the user stores, given
    /// `found`: `from`'s value if it is a legacy key of the user, and whether they
    /// store a key at `to`.
    pub fn of(rename: &KvRename, found: Option<&(StoredValue, bool)>) -> (RenameStep, i64) {
        let Some((value, to_taken)) = found else { return (RenameStep::Skip, 0) };
        let cost = |key: &KvKeyRequest| i64::try_from(kv_cost(&key.collection, &key.id, value)).unwrap_or(i64::MAX);
        if rename.from == rename.to {
            (RenameStep::Unmark, 0)
        } else if *to_taken {
            (RenameStep::Drop, -cost(&rename.from))
        } else {
            (RenameStep::Move, cost(&rename.to) - cost(&rename.from))
        }
    }

    /// Counts this step in `answer`: a key moved (or unmarked) is renamed, one whose
    /// sealed names were taken is dropped.
    pub fn count(self, answer: &mut KvRenameResponse) {
        match self {
            RenameStep::Skip => {}
            RenameStep::Unmark | RenameStep::Move => answer.renamed += 1,
            RenameStep::Drop => answer.dropped += 1,
        }
    }
}

/// What a committed file costs its committer: its distinct shards' bytes, its
/// sealed record and one reference per shard.
pub fn file_cost(shard_bytes: u64, shards: usize, sealed_record: usize) -> u64 {
    shard_bytes + sealed_record as u64 + FILE_ROW_BYTES + shards as u64 * SHARD_REF_BYTES
}

/// What a space costs its creator.
pub fn space_cost(sealed_name: usize) -> u64 {
    sealed_name as u64 + SPACE_ROW_BYTES
}

/// A role's wire name (`reader`, `writer`, `owner`), also its stored form.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Reader => "reader",
        Role::Writer => "writer",
        Role::Owner => "owner",
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
    /// The account's X25519 public key (SPEC.md §3.6), once published: members seal
    /// a space's new keys to it. It derives from the root secret, so it never
    /// changes; a password change keeps it.
    pub user_public_key: Option<[u8; 32]>,
    /// The account's recovery code's public material (SPEC.md §3.8), if it made
    /// one: it stands in for a forgotten password. A password change and a recovery
    /// keep it; only a new code replaces it.
    pub recovery: Option<Recovery>,
}

/// What a recovery code gives the accelerator (SPEC.md §3.8), as a password's
/// [`Credentials`] do: the public half of the key that signs recovery challenges,
/// and the root secret wrapped under the code. None of it is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Ed25519 public recovery key; recovery challenges are checked against it.
    pub public_key: [u8; 32],
    /// The root secret wrapped under the code's wrap key; opaque here, handed to
    /// whoever asks for a recovery challenge.
    pub wrapped_root: Vec<u8>,
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
    /// The user's published public key, for the session answer and to check a
    /// proof of the root against (SPEC.md §3.9).
    pub user_public_key: Option<[u8; 32]>,
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

/// A slice of a user's change log, read in one consistent snapshot.
///
/// The log keeps only the latest change of each key, so sequence numbers have
/// holes where a later change of the same key replaced one: a reader that applies
/// what is there ends in the same state. Beyond that, changes at or below `floor`
/// may have been pruned (only the last `retain` sequence numbers are kept): a
/// reader that last saw a sequence number below `floor` must resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeWindow {
    /// The user's latest sequence number at the time of the read.
    pub head: u64,
    /// Changes at or below it may have been pruned.
    pub floor: u64,
    /// Retained changes after the requested sequence number, in order, at most the
    /// requested number.
    pub changes: Vec<Change>,
}

/// A space as one of its members sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The space's id (16 bytes, base64url).
    pub space_id: String,
    /// The space's name sealed under its key; opaque here.
    pub sealed_name: Vec<u8>,
    /// The member's role.
    pub role: Role,
    /// When the space was created, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The space's key epoch; the sealed name is under its key.
    pub epoch: u32,
    /// Whether a member went since the last rotation.
    pub rotation_due: bool,
    /// Whether this member has a roster entry.
    pub in_roster: bool,
}

/// An invite as stored: the hash of its secret, never the secret or the space key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The space it admits to.
    pub space_id: String,
    /// `space::invite_secret_hash` of the token's secret; the lookup key on joining.
    pub secret_hash: [u8; 32],
    /// The role joiners get (never owner).
    pub role: Role,
    /// When it stops working, milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// Joins allowed in all.
    pub max_uses: u32,
}

/// A file record to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// The space it goes in.
    pub space_id: String,
    /// Its id there (16 bytes, base64url).
    pub file_id: String,
    /// The manifest sealed under the space key; opaque here.
    pub sealed_record: Vec<u8>,
    /// Every shard it needs, each once, in order (so that each step of a large
    /// commit touches neighbouring rows).
    pub shards: Arc<[ShardAddress]>,
    /// The most bytes those shards may hold, from the file's declared size.
    pub max_shard_bytes: u64,
    /// The committing user; must be a writer or owner of the space.
    pub created_by: String,
    /// When, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The key epoch the record is sealed under: the space's current one, or the
    /// commit is refused.
    pub epoch: u32,
}

/// A committed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The space it is in.
    pub space_id: String,
    /// Its id there.
    pub file_id: String,
    /// The sealed manifest; opaque here.
    pub sealed_record: Vec<u8>,
    /// Sum of the sizes of its distinct shards: what it counts against the quota.
    pub stored_bytes: u64,
    /// Who committed it (user id).
    pub created_by: String,
    /// When, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The key epoch its record is sealed under.
    pub epoch: u32,
}

/// Where a space's keys stand, as one member reads them (SPEC.md F.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The current epoch.
    pub epoch: u32,
    /// Whether a rotation is due.
    pub rotation_due: bool,
    /// Whether this member has a roster entry (one a rotation seals the new key to).
    pub in_roster: bool,
    /// The space's name sealed under the current epoch's key; opaque here.
    pub sealed_name: Vec<u8>,
    /// The current epoch's key sealed to this member; opaque here. `None` at epoch 0
    /// and for a member the last rotation left out.
    pub sealed_key: Option<Vec<u8>>,
    /// Links of the epochs asked for, oldest first.
    pub links: Vec<Link>,
}

/// One epoch's link: the previous epoch's key sealed under this epoch's; opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The epoch (1 or more).
    pub epoch: u32,
    /// Epoch `epoch - 1`'s key sealed under this epoch's.
    pub sealed_previous: Vec<u8>,
}

/// A rotation of a space's key to its next epoch, as checked by the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new epoch: the current one plus one, or it is refused.
    pub epoch: u32,
    /// The space's name sealed under the new key.
    pub sealed_name: Vec<u8>,
    /// The new epoch's link.
    pub sealed_previous: Vec<u8>,
    /// Each member with a roster entry, each once: exactly those, or it is refused.
    pub members: Vec<RotatedKey>,
}

/// One member's share of a [`Rotation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedKey {
    /// The member.
    pub user_id: String,
    /// The new key sealed to their public key.
    pub sealed_key: Vec<u8>,
    /// Their roster entry under the new key.
    pub roster_mac: [u8; 32],
}

/// The key a change of credentials was proven with, checked again as it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorised {
    /// The current password's login key (a password change).
    Login([u8; 32]),
    /// The account's recovery key (a recovery; the code stays).
    Recovery([u8; 32]),
}

impl Authorised {
    /// The `users` column that must still hold the key, and the key.
    pub fn column_and_key(&self) -> (&'static str, &[u8; 32]) {
        match self {
            Authorised::Login(key) => ("login_public_key", key),
            Authorised::Recovery(key) => ("recovery_public_key", key),
        }
    }
}

/// Accounts, their sessions and sign-in challenges, and what each user is charged.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Creates an account; [`StoreError::UsernameTaken`] if the name exists.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// Finds an account by username.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Publishes the account's public key, if it has none: the same key again
    /// changes nothing, another one is [`StoreError::KeyPublished`] (it never changes).
    async fn publish_key(&self, user_id: &str, public_key: &[u8; 32]) -> Result<(), StoreError>;

    /// Replaces a user's credentials if the key that authorised it (`by`) is still
    /// the account's, and revokes every session but `keep_session` (all of them
    /// when `None`). Returns `false` (changing nothing) if that key had changed by
    /// then: of two changes made with one key, one wins.
    async fn replace_credentials(
        &self,
        user_id: &str,
        by: &Authorised,
        new: &Credentials,
        keep_session: Option<&[u8; 32]>,
    ) -> Result<bool, StoreError>;

    /// Sets the account's recovery code, replacing any earlier one (which then stops
    /// working).
    async fn set_recovery(&self, user_id: &str, recovery: &Recovery) -> Result<(), StoreError>;

    /// Records a session under the hash of its token, dropping expired ones and,
    /// beyond the newest `keep_at_most` of the user's sessions, the oldest.
    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        user_id: &str,
        expires_at_ms: u64,
        now_ms: u64,
        keep_at_most: usize,
    ) -> Result<(), StoreError>;

    /// The session with this token hash, if it exists and has not expired at `now_ms`.
    async fn session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<Option<Session>, StoreError>;

    /// Revokes a session. Returns the user it belonged to, if any.
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<Option<String>, StoreError>;

    /// Records a challenge, dropping expired ones.
    async fn create_challenge(&self, challenge: &Challenge, now_ms: u64) -> Result<(), StoreError>;

    /// Removes and returns a challenge: each is answered at most once.
    async fn take_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>, StoreError>;

    /// The server secret ([`crate::secret`]) every accelerator on these records
    /// shares: the stored one, or `candidate` stored now if there is none yet. Of
    /// accelerators starting at once, the first to store wins and the others get
    /// its secret.
    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError>;

    /// Bytes counted against `user_id`'s allowance.
    async fn used_bytes(&self, user_id: &str) -> Result<u64, StoreError>;
}

/// Each user's kv values and their change log.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
    /// Reads one value.
    async fn kv_get(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<StoredValue>, StoreError>;

    /// Writes one value and appends the change to the log, in one transaction,
    /// charging the difference in [`kv_cost`] to the user within `allowance`. The
    /// log keeps only this latest change of the key. Returns its sequence number.
    /// The key is legacy ([`Kv::kv_legacy`]) if it was, or if its names lack a sealed
    /// name's shape ([`set_is_legacy`]): an SDK from before sealed names writing.
    async fn kv_set(
        &self,
        user_id: &str,
        collection: &str,
        id: &str,
        value: &StoredValue,
        allowance: u64,
    ) -> Result<u64, StoreError>;

    /// Deletes one value and refunds its cost; if it existed, appends the change to
    /// the log in the same transaction (replacing the key's earlier change) and
    /// returns its sequence number.
    async fn kv_delete(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<u64>, StoreError>;

    /// A page of the ids in a collection, in byte order.
    async fn kv_list(&self, user_id: &str, collection: &str, page: &PageRequest) -> Result<Page<String>, StoreError>;

    /// The user's latest sequence number and up to `limit` retained changes after `after`.
    async fn changes_after(&self, user_id: &str, after: u64, limit: usize) -> Result<ChangeWindow, StoreError>;

    /// The user's first legacy keys, ordered by collection, then id, each with its
    /// value as stored: the keys stored under the names an SDK before sealed names
    /// sent in the clear (every key stored before the schema gained them, and every
    /// key written since under names without a sealed name's shape,
    /// [`set_is_legacy`]), until renamed. At most `limit`, the first always, then
    /// each next one while the value bytes of those after the first stay within
    /// [`MAX_LEGACY_PAGE_VALUE_BYTES`] ([`LegacyPage`]). Values are read only as
    /// far as the page goes.
    async fn kv_legacy(&self, user_id: &str, limit: usize) -> Result<Vec<LegacyKey>, StoreError>;

    /// Moves the user's legacy keys to their sealed names, in one transaction, each
    /// rename in order as [`RenameStep::of`] decides: a `from` that is not a legacy
    /// key of the user is skipped; one renamed to itself stops being legacy; one
    /// whose `to` is taken is dropped with its change-log entry and refunded; any
    /// other moves to `to` with its value and its change-log entry, which keeps its
    /// sequence number (no new change, so no feed is woken; an earlier entry of `to`,
    /// a delete, goes: the log keeps one entry per key). The change in what the user
    /// stores is never refused: each key is renamed once, and a sealed name is only
    /// so long, so a migration cannot fail on the allowance.
    ///
    /// A user with no legacy key at all gets zero renamed and zero dropped at once,
    /// without a look at any rename: endless batches of renames from an account with
    /// nothing to move cost one lookup each.
    async fn kv_rename(&self, user_id: &str, renames: &[KvRename]) -> Result<KvRenameResponse, StoreError>;
}

/// Spaces, their members and invites.
///
/// A member's roster entry (SPEC.md F.12) is entered with their membership: the
/// account must have published its public key ([`StoreError::NoPublicKey`]).
/// Leaving or being removed, when members remain, makes a rotation due and deletes
/// the space's invites ([`SpaceKeys`]).
#[async_trait]
pub trait Spaces: Send + Sync + 'static {
    /// Creates a space at epoch 0 with `owner` as its one member, with their roster
    /// entry, charging [`space_cost`] to them within `allowance`;
    /// [`StoreError::SpaceTaken`] if the id exists.
    async fn create_space(
        &self,
        space_id: &str,
        sealed_name: &[u8],
        owner: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
        allowance: u64,
    ) -> Result<Membership, StoreError>;

    /// The spaces `user_id` is a member of, oldest first.
    async fn spaces_of(&self, user_id: &str, page: &PageRequest) -> Result<Page<Membership>, StoreError>;

    /// Registers an invite made by `actor`, who must own the space, for a token that
    /// carries epoch `epoch`'s key: the current one, with no rotation due
    /// ([`StoreError::StaleEpoch`], [`StoreError::RotationDue`]). Drops the space's
    /// expired invites.
    async fn create_invite(&self, actor: &str, invite: &Invite, epoch: u32, now_ms: u64) -> Result<(), StoreError>;

    /// Adds `user_id` to the space, with this roster entry, through the invite with
    /// this secret hash, using one of its uses. A user who is already a member gets
    /// their membership back with the roster entry replaced (their sealed key kept),
    /// and the invite is not used.
    async fn join_space(
        &self,
        space_id: &str,
        secret_hash: &[u8; 32],
        user_id: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
    ) -> Result<Membership, StoreError>;

    /// The space's members in joining order, each with their published public key
    /// and roster entry; `actor` must be one.
    async fn members(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<Member>, StoreError>;

    /// Takes `user_id` out of the space. The last member leaving withdraws the space
    /// with its invites and files, refunding whoever paid for them, and gets `true`:
    /// [`Files::unwind`] then takes it apart. Otherwise a rotation is due and the
    /// space's invites are deleted.
    async fn leave_space(&self, space_id: &str, user_id: &str) -> Result<bool, StoreError>;

    /// `actor`, an owner, takes `user_id` out of the space: a rotation is due and the
    /// space's invites are deleted.
    async fn remove_member(&self, space_id: &str, actor: &str, user_id: &str) -> Result<(), StoreError>;

    /// Bytes the space's committed files hold; `actor` must be a member.
    async fn space_usage(&self, space_id: &str, actor: &str) -> Result<u64, StoreError>;
}

/// A space's key epochs (SPEC.md F.12): roster entries, each member's sealed key,
/// the links, and rotation. The accelerator never holds a space key: it stores what
/// members made and enforces, in each method's transaction, who may write what at
/// which epoch. Any member — reader, writer or owner — may enter the roster and read
/// the keys; only writers and owners may rotate, and only while a rotation is due.
#[async_trait]
pub trait SpaceKeys: Send + Sync + 'static {
    /// Sets `actor`'s roster entry, made under epoch `epoch`'s key: the current one
    /// ([`StoreError::StaleEpoch`]). The account must have published its public key
    /// ([`StoreError::NoPublicKey`]). Allowed while a rotation is due, so that a
    /// member from before rosters can enter and then rotate.
    async fn enter_roster(
        &self,
        space_id: &str,
        actor: &str,
        epoch: u32,
        roster_mac: &[u8; 32],
    ) -> Result<(), StoreError>;

    /// Where the space's keys stand for `actor`: the current epoch, whether a
    /// rotation is due, whether they have a roster entry, the key sealed to them,
    /// and up to `limit` links of the epochs after `after`, oldest first.
    async fn space_keys(&self, space_id: &str, actor: &str, after: u32, limit: usize) -> Result<KeyState, StoreError>;

    /// Rotates the space's key to `rotation.epoch`, which must be the current epoch
    /// plus one ([`StoreError::NotNextEpoch`]: of two rotations to one epoch, the
    /// second gets this), while a rotation is due ([`StoreError::NoRotationDue`],
    /// checked in the same transaction as the epoch), by `actor`, a writer or owner
    /// ([`StoreError::RoleTooLow`]) with a roster entry
    /// ([`StoreError::NotInRoster`]), for exactly the members that have one
    /// ([`StoreError::RosterChanged`]). In one transaction: stores the link (made by
    /// `actor` at `now_ms`) and the new sealed name, sets each listed member's
    /// sealed key and entry and clears both for every other member, clears the
    /// rotation due, and deletes every invite of the space. Returns `actor`'s
    /// membership at the new epoch.
    async fn rotate(
        &self,
        space_id: &str,
        actor: &str,
        rotation: &Rotation,
        now_ms: u64,
    ) -> Result<Membership, StoreError>;
}

/// A hold on some shard addresses ([`Files::hold_shards`]), released when dropped.
///
/// While one is held, no other hold on any of its addresses is granted — by these
/// records or by any other accelerator's on the same data — so the shard keeper's
/// "bytes, then record" and "record, then bytes" never interleave for one address
/// ([`keeper`]).
#[must_use = "the addresses are released when the hold drops"]
pub struct ShardHold(
    /// Whatever the backend releases on drop; never read.
    #[allow(dead_code)]
    Box<dyn Send + Sync>,
);

impl ShardHold {
    /// A hold that lasts as long as `guard`: the backend releases its lock when
    /// `guard` drops.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        ShardHold(Box::new(guard))
    }
}

impl std::fmt::Debug for ShardHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShardHold")
    }
}

/// Shard records, uploads, files and the shards each file references.
#[async_trait]
pub trait Files: Send + Sync + 'static {
    /// Waits until no one holds any of `addresses`, then holds them all until the
    /// returned hold drops. A hold reaches every accelerator on these records: the
    /// shard keeper stores and frees a shard only under its hold ([`keeper`]).
    ///
    /// Holders take their addresses in one order, so two holds of overlapping sets
    /// never wait for each other in a circle; an address listed twice is held once.
    /// A hold must not be asked for while the same task keeps another one.
    async fn hold_shards(&self, addresses: &[ShardAddress]) -> Result<ShardHold, StoreError>;

    /// Records that `user_id` uploaded a shard (after its bytes are durable): the
    /// shard's record (re-stamped to `now_ms`, never earlier than it was), and the
    /// user's upload of it, which pins it until `expires_at_ms` and is charged to them
    /// until then or until they commit it. Uploading it again moves the deadline.
    async fn record_upload(
        &self,
        user_id: &str,
        address: &ShardAddress,
        size: u64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), StoreError>;

    /// For each address, in order, whether `user_id` has an upload of it pending;
    /// each one's deadline moves to `expires_at_ms`. Other users' uploads are not
    /// seen and not moved.
    async fn touch_uploads(
        &self,
        user_id: &str,
        addresses: &[ShardAddress],
        expires_at_ms: u64,
    ) -> Result<Vec<bool>, StoreError>;

    /// Drops up to `limit` uploads whose deadline is at or before `now_ms`, refunding
    /// their uploaders. Returns how many it dropped.
    async fn expire_uploads(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError>;

    /// Whether a shard is recorded under `address`.
    async fn shard_recorded(&self, address: &ShardAddress) -> Result<bool, StoreError>;

    /// Up to `limit` recorded shards that no committed file references, no pending
    /// upload pins, and whose `stored_at` is before `stored_before_ms`: candidates
    /// for the collector.
    async fn collectable_shards(&self, stored_before_ms: u64, limit: usize) -> Result<Vec<ShardAddress>, StoreError>;

    /// Drops, in one transaction, the record of each of `addresses` that at this
    /// moment no file references, no pending upload pins, and that was stamped
    /// before `stored_before_ms` (`u64::MAX`: however recently). Returns those it
    /// dropped; the caller then deletes their bytes.
    async fn forget_shards(
        &self,
        addresses: &[ShardAddress],
        stored_before_ms: u64,
    ) -> Result<Vec<ShardAddress>, StoreError>;

    /// The most shards one transaction adds or drops: commits, deletes and a space's
    /// end take as many steps as they need, and every other write gets its turn
    /// between two of them.
    fn step(&self) -> usize;

    /// Checks, without writing, what [`Files::draft_file`] and
    /// [`Files::seal_draft`] would check of the whole file — its epoch is the
    /// space's current one with no rotation due, its id is free, every shard may be
    /// listed, it fits its declared size and `quotas` — so a commit of many steps is
    /// refused before its first one in all but a race, and its writer's uploads stay
    /// as they were.
    async fn check_commit(&self, file: &NewFile, quotas: Quotas) -> Result<(), StoreError>;

    /// Commits a file that takes one step, in one transaction: what
    /// [`Files::draft_file`] and [`Files::seal_draft`] do, and a refusal changes
    /// nothing.
    async fn commit_whole(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError>;

    /// One step of a commit: adds `file.shards[range]` to the file's draft, which the
    /// first step (`range.start == 0`) opens, invisible, under the file's id
    /// ([`StoreError::FileTaken`] if the id is used). Each listed shard must be
    /// stored and be either the creator's own pending upload or already used by a
    /// committed file of the same space; the creator's uploads of them are settled
    /// into the draft (their charge moves to it), which pins them until
    /// `expires_at_ms`. The file's epoch must be the space's current one with no
    /// rotation due ([`StoreError::StaleEpoch`], [`StoreError::RotationDue`]). A
    /// refused step changes nothing.
    async fn draft_file(&self, file: &NewFile, range: Range<usize>, expires_at_ms: u64) -> Result<(), StoreError>;

    /// The last step of a commit: makes the draft, holding every listed shard, the
    /// visible file at its epoch, if that is still the space's current one with no
    /// rotation due, its shards hold no more than the declared size needs and both
    /// the space and the creator stay within `quotas` (the file costs
    /// [`file_cost`]). A refused seal changes nothing.
    async fn seal_draft(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError>;

    /// Withdraws `creator`'s draft of a file, refunding what it was charged, for
    /// [`Files::unwind`] to take apart. Nothing happens if there is none.
    async fn abandon_draft(&self, space_id: &str, file_id: &str, creator: &str) -> Result<(), StoreError>;

    /// Commits a file: one that takes one step [`Files::commit_whole`]; a larger
    /// one [`Files::check_commit`], then [`Files::draft_file`] a
    /// [`Files::step`] at a time, then [`Files::seal_draft`]. Either the file becomes visible with all its shards
    /// or it does not. A commit refused after its first step (something changed
    /// since the check) abandons its draft, for [`crate::store::keeper::ShardKeeper::unwind`]
    /// (or the collector) to take apart.
    async fn commit_file(&self, file: &NewFile, quotas: Quotas, expires_at_ms: u64) -> Result<FileRecord, StoreError> {
        let step = self.step().max(1);
        if file.shards.len() <= step {
            return self.commit_whole(file, quotas).await;
        }
        self.check_commit(file, quotas).await?;
        let mut start = 0;
        let mut result = Ok(());
        while start < file.shards.len() {
            let end = (start + step).min(file.shards.len());
            result = self.draft_file(file, start..end, expires_at_ms).await;
            if result.is_err() {
                break;
            }
            start = end;
        }
        let result = match result {
            Ok(()) => self.seal_draft(file, quotas).await,
            Err(err) => Err(err),
        };
        // The first step opens the draft and is refused whole: after it, a refusal
        // leaves a draft behind.
        if result.is_err() && start > 0 {
            self.abandon_draft(&file.space_id, &file.file_id, &file.created_by).await?;
        }
        result
    }

    /// The space's files, oldest first; `actor` must be a member.
    async fn files(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<FileRecord>, StoreError>;

    /// One file; `actor` must be a member.
    async fn file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<Option<FileRecord>, StoreError>;

    /// Withdraws a file, which `actor` must be a writer or owner to do: it is no
    /// longer listed or counted, and its committer is refunded; [`Files::unwind`]
    /// then drops its references. `false` if there was no such file.
    async fn delete_file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<bool, StoreError>;

    /// One step of taking a withdrawn file or space apart: drops up to `limit` of its
    /// references (and, once none are left, the thing itself). Returns the shards
    /// that no file references any more, for the caller to free.
    async fn unwind(&self, what: &Withdrawn, limit: usize) -> Result<Unwound, StoreError>;

    /// Withdraws the drafts whose deadline passed by `now_ms` (a commit that never
    /// finished: the accelerator stopped under it), then lists up to `limit` things
    /// withdrawn and not yet taken apart, for the collector.
    async fn withdrawn(&self, now_ms: u64, limit: usize) -> Result<Vec<Withdrawn>, StoreError>;
}

/// Every domain of the records in one backend. Implementations must be safe to call
/// from many tasks at once, and on several accelerators sharing one database; each
/// method is one transaction.
pub trait Records: Accounts + Kv + Spaces + SpaceKeys + Files {}

impl<T: Accounts + Kv + Spaces + SpaceKeys + Files> Records for T {}
