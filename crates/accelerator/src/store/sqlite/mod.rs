//! The embedded backend: one SQLite file (`accelerator.sqlite3`) in the data
//! directory, in WAL mode: one writing connection on a thread of its own that
//! commits writes in batches ([`writer`]), read-only connections beside it.
//!
//! One writer keeps every write strictly ordered, which is what the change log
//! needs (sequence numbers are assigned inside the write), and a kv write is only a
//! few indexed statements; the writes that wait while a batch syncs share the next
//! sync. No write is held up long: a commit, a delete or a space's end of many
//! shards works in steps of at most [`Files::step`] shards, each a write of its
//! own, and the writes that arrived meanwhile go between two steps. A commit of more than one step is first checked
//! whole on a read-only connection of its own ([`Files::check_commit`]); its steps
//! fill an invisible draft, and its last step makes the file visible, so it is still
//! seen whole or not at all. Deleted files and spaces are invisible at once and are
//! taken apart a step at a time ([`Files::unwind`]).

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use coffer_core::account::KdfParams;
use coffer_core::b64;
use coffer_core::proto::storage::{Member, Role};
use coffer_core::proto::{KvRename, KvRenameResponse};
use coffer_core::shard::ShardAddress;
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

mod accounts;
mod files;
mod holds;
mod kv;
mod space_keys;
mod spaces;
pub mod writer;

use writer::Writer;

use super::{
    Accounts, Authorised, Challenge, Change, ChangeWindow, Credentials, FileRecord, Files, Invite, KeyState, Kv,
    LegacyKey, LegacyPage, Link, MAX_LIVE_INVITES, Membership, NewFile, Page, PageRequest, Quota, Quotas, Recovery,
    RenameStep, Rotation, Session, ShardHold, SpaceKeys, Spaces, StoreError, StoredValue, Unwound, User, Withdrawn,
    async_trait, file_cost, kv_cost, paged, position, role_name, set_is_legacy, space_cost,
};
use space_keys::*;
use spaces::*;

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "accelerator.sqlite3";

/// Each step takes the schema from version `i` to `i + 1` (`PRAGMA user_version`);
/// opening runs the steps a database lacks, all in one transaction. The steps are
/// the files in `migrations/sqlite/`, in order; one is never edited once released:
/// a change is a new file.
const MIGRATIONS: [&str; 8] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8];

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Accounts, sessions, challenges, kv values and the kv change log.
const SCHEMA_V1: &str = include_str!("../../../migrations/sqlite/0001_accounts_and_kv.sql");
/// Shards, spaces, members, invites, files and the shards each file references.
const SCHEMA_V2: &str = include_str!("../../../migrations/sqlite/0002_spaces_and_files.sql");
/// Metering: allowances, uploads pinned by their uploader, one change per key.
const SCHEMA_V3: &str = include_str!("../../../migrations/sqlite/0003_metering.sql");
/// Work in steps: drafts, withdrawn files and spaces.
const SCHEMA_V4: &str = include_str!("../../../migrations/sqlite/0004_steps.sql");
/// The server secret, shared through the records.
const SCHEMA_V5: &str = include_str!("../../../migrations/sqlite/0005_server_secret.sql");
/// Key epochs: published public keys, epochs, roster entries, sealed keys, links.
const SCHEMA_V6: &str = include_str!("../../../migrations/sqlite/0006_key_epochs.sql");
/// Recovery codes: each account's recovery key and root wrapped under its code.
const SCHEMA_V7: &str = include_str!("../../../migrations/sqlite/0007_recovery.sql");
/// Sealed kv names: every kv row from before is legacy until renamed.
const SCHEMA_V8: &str = include_str!("../../../migrations/sqlite/0008_kv_names.sql");

/// Statements through the connection's cache of prepared statements: the writer
/// runs the same few statements thousands of times a second, and preparing one
/// costs more than running it.
trait Cached {
    /// `execute`, prepared once.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// `query_row`, prepared once.
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Prepared statements each connection keeps: more than the store has.
const STATEMENT_CACHE: usize = 256;

/// Read-only connections beside the writer: reads never wait for a write (WAL lets
/// them read the last committed state while it runs), nor for each other up to this
/// many at once.
const READERS: usize = 4;

/// The records in one SQLite file. Cheap to clone: clones share the connections.
///
/// Each domain's methods are in a file of their own (`accounts.rs`, `kv.rs`,
/// `spaces.rs`, `space_keys.rs`, `files.rs`): first as blocking methods of [`Db`],
/// then as the async trait, which runs them on tokio's blocking pool.
#[derive(Clone)]
pub struct SqliteRecords(Arc<Db>);

/// The connections, and the blocking methods every trait method runs.
pub struct Db {
    /// The writing connection, on a thread of its own that commits writes in batches
    /// ([`writer`]); writes are served in order of arrival, so the steps of a long
    /// commit or delete ([`Files::step`]) let the others in.
    writer: Writer,
    /// Connections for reads only ([`READERS`]).
    readers: Vec<Mutex<Connection>>,
    /// A read-only connection that checks commits of more than one step before
    /// their first step ([`Files::check_commit`]): large commits wait for each
    /// other here, not in the readers' way.
    checker: Mutex<Connection>,
    /// Where the next read waits when every reader is busy.
    next_reader: AtomicUsize,
    /// Shard addresses held ([`Files::hold_shards`]): in this process only, which
    /// is all one SQLite file serves.
    holds: Arc<holds::Holds>,
    /// Change-log entries kept per user; older ones are pruned on write.
    retain: u64,
    /// Shards one transaction adds or drops at most ([`Files::step`]).
    step: usize,
}

/// Shards one transaction adds or drops at most, unless [`SqliteRecords::with_step`]
/// says otherwise. A step of a commit of sorted shards (as the commit route lists
/// them) takes ~10 ms with its sync, which is about the longest another write waits
/// for one; smaller steps wait a little less and make large commits much slower
/// (`scripts/bench`'s large-commit table, `target/bench/commit.md`).
pub const STEP: usize = 1024;

/// Opens a read-only connection to the database at `path`.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        backend(err)
    }
}

/// SQLite integers are signed; every number stored here is far below `i64::MAX`.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqliteRecords {
    /// Opens (or creates) the database in `data_dir`, keeping `retain` change-log
    /// entries per user.
    pub fn open(data_dir: &Path, retain: u64) -> Result<Self, StoreError> {
        Self::open_file(&data_dir.join(FILE_NAME), retain)
    }

    /// Opens (or creates) the database in the file at `path`.
    pub fn open_file(path: &Path, retain: u64) -> Result<Self, StoreError> {
        Ok(SqliteRecords(Arc::new(Db::open(path, retain)?)))
    }

    /// Makes [`Files::step`] `step` shards (at least one), so a test can watch
    /// other writes come between the steps of a small commit. Call it before the
    /// store is cloned.
    pub fn with_step(self, step: usize) -> Self {
        let mut db = Arc::try_unwrap(self.0).unwrap_or_else(|_| panic!("with_step on a shared store"));
        db.step = step.max(1);
        SqliteRecords(Arc::new(db))
    }

    /// Runs a blocking method of [`Db`] on tokio's blocking pool.
    async fn run<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.0);
        match tokio::task::spawn_blocking(move || call(&db)).await {
            Ok(result) => result,
            Err(join) => Err(StoreError::Backend(format!("SQLite task failed: {join}"))),
        }
    }
}

impl Db {
    /// Opens (or creates) the database in `data_dir`, keeping `retain` change-log
    /// entries per user.
    fn open(path: &Path, retain: u64) -> Result<Self, StoreError> {
        let path = path.to_owned();
        // SQLite gives its -wal and -shm files the database file's mode: make that
        // 0600 before it opens (and mend files an older version left readable).
        let private = |path: &Path| -> std::io::Result<()> {
            super::private_file_options().truncate(false).open(path)?;
            for suffix in ["", "-wal", "-shm"] {
                super::make_private(Path::new(&format!("{}{suffix}", path.display())))?;
            }
            Ok(())
        };
        private(&path).map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let mut conn = Connection::open(&path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        // FULL: a write the client saw acknowledged survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        let version: i64 = conn.row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "database schema version {version} is newer than this accelerator ({SCHEMA_VERSION}); upgrade it"
            )));
        }
        let tx = conn.transaction().map_err(backend)?;
        for step in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
            tx.execute_batch(step).map_err(backend)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(backend)?;
        tx.commit().map_err(backend)?;
        let readers = (0..READERS).map(|_| open_reader(&path).map(Mutex::new)).collect::<Result<_, _>>()?;
        Ok(Db {
            writer: Writer::start(conn),
            readers,
            checker: Mutex::new(open_reader(&path)?),
            next_reader: AtomicUsize::new(0),
            holds: Arc::default(),
            retain: retain.max(1),
            step: STEP,
        })
    }

    /// A free read-only connection, or, when all are busy, a turn at one of them.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        for reader in &self.readers {
            match reader.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let turn = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[turn].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `write` on the writer ([`Writer::write`]): in a savepoint of its own, in
    /// the next batch; answers once that batch is durable.
    fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(write)
    }
}
/// The cursor of a row in a list ordered by (time, rowid): `"{ms}.{rowid}"`, read
/// from the row's columns `ms_at` and `rowid_at`.
pub(super) fn cursor_at(row: &Row<'_>, ms_at: usize, rowid_at: usize) -> rusqlite::Result<String> {
    Ok(format!("{}.{}", row.get::<_, i64>(ms_at)?, row.get::<_, i64>(rowid_at)?))
}

/// Adds `delta` bytes to what `user_id` stores, inside the caller's transaction. A
/// growth that would pass `allowance` is refused with nothing changed (a shrink
/// never is).
pub(super) fn charge(conn: &Connection, user_id: &str, delta: i64, allowance: u64) -> Result<(), StoreError> {
    let used: i64 = conn.row("SELECT used_bytes FROM users WHERE user_id = ?1", [user_id], |r| r.get(0))?;
    let after = used.saturating_add(delta).max(0);
    if delta > 0 && uint(after) > allowance {
        return Err(StoreError::QuotaExceeded {
            limit: Quota::User,
            used: uint(used),
            adding: uint(delta),
            quota: allowance,
        });
    }
    conn.exec("UPDATE users SET used_bytes = ?2 WHERE user_id = ?1", params![user_id, after])?;
    Ok(())
}

/// `charge` for a refund, which is never refused.
pub(super) fn refund(conn: &Connection, user_id: &str, bytes: u64) -> Result<(), StoreError> {
    charge(conn, user_id, -int(bytes), u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            user_id: format!("id-{name}"),
            username: name.into(),
            credentials: Credentials {
                salt: [1; 16],
                kdf: KdfParams::default(),
                login_public_key: [1; 32],
                wrapped_root: vec![1; 61],
            },
            kv_seq: 0,
            user_public_key: Some([9; 32]),
            recovery: None,
        }
    }

    #[tokio::test]
    async fn a_version_1_database_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let db = SqliteRecords::open(dir.path(), 10).unwrap();
        db.create_user(&user("ada")).await.unwrap();
        drop(db);
        let db = SqliteRecords::open(dir.path(), 10).unwrap();
        let version: i64 = db.0.reader().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(db.user_by_name("ada").await.unwrap().is_some());
        db.create_space("s1", b"name", "id-ada", &[3; 32], 5, u64::MAX).await.unwrap();
        assert_eq!(db.spaces_of("id-ada", &PageRequest { after: None, limit: 10 }).await.unwrap().items.len(), 1);

        db.0.write(|tx| tx.pragma_update(None, "user_version", SCHEMA_VERSION + 1).map_err(backend)).unwrap();
        drop(db);
        assert!(SqliteRecords::open(dir.path(), 10).is_err(), "a newer schema is refused");
    }

    #[tokio::test]
    async fn a_version_2_database_is_charged_as_it_stands() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch(SCHEMA_V2).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO users VALUES ('u', 'ada', x'00', 'argon2id', 1, 1, 1, x'00', x'00', 3);
                 INSERT INTO kv (user_id, collection, id, sealed) VALUES ('u', 'c', 'k', zeroblob(100));
                 INSERT INTO kv_changes (user_id, seq, collection, id, sealed) VALUES ('u', 1, 'c', 'k', x'00');
                 INSERT INTO kv_changes (user_id, seq, collection, id, sealed) VALUES ('u', 2, 'c', 'j', x'00');
                 INSERT INTO kv_changes (user_id, seq, collection, id, sealed) VALUES ('u', 3, 'c', 'k', x'00');
                 INSERT INTO spaces VALUES ('s', zeroblob(40), 0);
                 INSERT INTO members VALUES ('s', 'u', 'owner', 0);
                 INSERT INTO shards VALUES (zeroblob(32), 1000, 0);
                 INSERT INTO files VALUES ('s', 'f', zeroblob(50), 1000, 'u', 0);
                 INSERT INTO file_shards VALUES ('s', 'f', zeroblob(32));",
            )
            .unwrap();
        }
        let db = SqliteRecords::open(dir.path(), 10).unwrap();
        let kv = kv_cost("c", "k", &StoredValue::Sealed(vec![0; 100]));
        assert_eq!(db.used_bytes("u").await.unwrap(), kv + file_cost(1000, 1, 50) + space_cost(40));
        let seqs: Vec<u64> = db.changes_after("u", 0, 10).await.unwrap().changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [2, 3], "the change of k that a later one replaced is gone");
        db.delete_file("s", "f", "u").await.unwrap();
        assert_eq!(db.used_bytes("u").await.unwrap(), kv + space_cost(40));
        db.leave_space("s", "u").await.unwrap();
        assert_eq!(db.used_bytes("u").await.unwrap(), kv);
    }
}
