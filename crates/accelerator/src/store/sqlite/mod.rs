//! The embedded backend: one SQLite file (`accelerator.sqlite3`) in the data
//! directory, in WAL mode: one writing connection on a thread of its own that
//! commits writes in batches ([`writer`]), read-only connections beside it.
//!
//! One writer keeps every write strictly ordered, which is what the change log
//! needs (sequence numbers are assigned inside the write), and a kv write is only a
//! few indexed statements; the writes that wait while a batch syncs share the next
//! sync. No write is held up long: a commit, a delete or a space's end of many
//! shards works in steps of at most [`Records::step`] shards, each a write of its
//! own, and the writes that arrived meanwhile go between two steps. A commit of more than one step is first checked
//! whole on a read-only connection of its own ([`Records::check_commit`]); its steps
//! fill an invisible draft, and its last step makes the file visible, so it is still
//! seen whole or not at all. Deleted files and spaces are invisible at once and are
//! taken apart a step at a time ([`Records::unwind`]).

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use coffer_core::account::KdfParams;
use coffer_core::proto::storage::{Member, Role};
use coffer_core::shard::ShardAddress;
use rusqlite::types::Type;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

pub mod writer;

use writer::Writer;

use super::{
    Challenge, Change, ChangeWindow, Credentials, FileRecord, Invite, Membership, NewFile, Page, PageRequest, Quota,
    Quotas, Records, Session, StoreError, StoredValue, Unwound, User, Withdrawn, file_cost, kv_cost, role_name,
    space_cost,
};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "accelerator.sqlite3";

/// Each step takes the schema from version `i` to `i + 1` (`PRAGMA user_version`);
/// opening runs the steps a database lacks, all in one transaction. The steps are
/// the files in `migrations/sqlite/`, in order; one is never edited once released:
/// a change is a new file.
const MIGRATIONS: [&str; 4] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4];

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Accounts, sessions, challenges, kv values and the kv change log.
const SCHEMA_V1: &str = include_str!("../../../migrations/sqlite/0001_accounts_and_kv.sql");
/// Shards, spaces, members, invites, files and the shards each file references.
const SCHEMA_V2: &str = include_str!("../../../migrations/sqlite/0002_spaces_and_files.sql");
/// Metering: allowances, uploads pinned by their uploader, one change per key.
const SCHEMA_V3: &str = include_str!("../../../migrations/sqlite/0003_metering.sql");
/// Work in steps: drafts, withdrawn files and spaces.
const SCHEMA_V4: &str = include_str!("../../../migrations/sqlite/0004_steps.sql");

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

/// [`Records`] in one SQLite file.
pub struct SqliteRecords {
    /// The writing connection, on a thread of its own that commits writes in batches
    /// ([`writer`]); writes are served in order of arrival, so the steps of a long
    /// commit or delete ([`Records::step`]) let the others in.
    writer: Writer,
    /// Connections for reads only ([`READERS`]).
    readers: Vec<Mutex<Connection>>,
    /// A read-only connection that checks commits of more than one step before
    /// their first step ([`Records::check_commit`]): large commits wait for each
    /// other here, not in the readers' way.
    checker: Mutex<Connection>,
    /// Where the next read waits when every reader is busy.
    next_reader: AtomicUsize,
    /// Change-log entries kept per user; older ones are pruned on write.
    retain: u64,
    /// Shards one transaction adds or drops at most ([`Records::step`]).
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
        let path = data_dir.join(FILE_NAME);
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
        Ok(SqliteRecords {
            writer: Writer::start(conn),
            readers,
            checker: Mutex::new(open_reader(&path)?),
            next_reader: AtomicUsize::new(0),
            retain: retain.max(1),
            step: STEP,
        })
    }

    /// Makes [`Records::step`] `step` shards (at least one), so a test can watch
    /// other writes come between the steps of a small commit.
    pub fn with_step(mut self, step: usize) -> Self {
        self.step = step.max(1);
        self
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

const USER_COLUMNS: &str = "user_id, username, salt, kdf_alg, kdf_mem_kib, kdf_iterations, \
                            kdf_parallelism, login_public_key, wrapped_root, kv_seq";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        user_id: row.get(0)?,
        username: row.get(1)?,
        credentials: Credentials {
            salt: row.get(2)?,
            kdf: KdfParams {
                alg: row.get(3)?,
                mem_kib: row.get(4)?,
                iterations: row.get(5)?,
                parallelism: row.get(6)?,
            },
            login_public_key: row.get(7)?,
            wrapped_root: row.get(8)?,
        },
        kv_seq: uint(row.get(9)?),
    })
}

/// Reads a value from three columns (sealed, plain_json, plain_mac) starting at `at`.
fn value_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<StoredValue>> {
    let sealed: Option<Vec<u8>> = row.get(at)?;
    let json: Option<String> = row.get(at + 1)?;
    let mac: Option<[u8; 32]> = row.get(at + 2)?;
    Ok(match (sealed, json, mac) {
        (Some(bytes), _, _) => Some(StoredValue::Sealed(bytes)),
        (None, Some(json), Some(mac)) => Some(StoredValue::Plain { json, mac }),
        _ => None,
    })
}

/// The stored value of one key.
fn stored_value(
    conn: &Connection,
    user_id: &str,
    collection: &str,
    id: &str,
) -> Result<Option<StoredValue>, StoreError> {
    let found = conn
        .row(
            "SELECT sealed, plain_json, plain_mac FROM kv WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
            params![user_id, collection, id],
            |r| value_from_row(r, 0),
        )
        .optional()?;
    Ok(found.flatten())
}

/// The first `limit` of `rows` (each with its cursor), and the cursor of the last
/// one kept if more followed. Queries ask for `limit + 1` rows to know.
fn paged<T>(mut rows: Vec<(T, String)>, limit: usize) -> Page<T> {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(_, cursor)| cursor.clone())
    } else {
        None
    };
    Page { items: rows.into_iter().map(|(item, _)| item).collect(), next }
}

/// The cursor of a row in a list ordered by (time, rowid): `"{ms}.{rowid}"`, read
/// from the row's columns `ms_at` and `rowid_at`.
fn cursor_at(row: &Row<'_>, ms_at: usize, rowid_at: usize) -> rusqlite::Result<String> {
    Ok(format!("{}.{}", row.get::<_, i64>(ms_at)?, row.get::<_, i64>(rowid_at)?))
}

/// Where a page of a (time, rowid)-ordered list starts: after this position.
fn position(page: &PageRequest) -> Result<(i64, i64), StoreError> {
    let Some(after) = &page.after else { return Ok((i64::MIN, i64::MIN)) };
    let (ms, rowid) = after.split_once('.').ok_or(StoreError::BadCursor)?;
    Ok((ms.parse().map_err(|_| StoreError::BadCursor)?, rowid.parse().map_err(|_| StoreError::BadCursor)?))
}

/// The three value columns' contents for a value.
fn value_columns(value: &StoredValue) -> (Option<&[u8]>, Option<&str>, Option<&[u8]>) {
    match value {
        StoredValue::Sealed(bytes) => (Some(bytes), None, None),
        StoredValue::Plain { json, mac } => (None, Some(json), Some(mac)),
    }
}

/// Adds `delta` bytes to what `user_id` stores, inside the caller's transaction. A
/// growth that would pass `allowance` is refused with nothing changed (a shrink
/// never is).
fn charge(conn: &Connection, user_id: &str, delta: i64, allowance: u64) -> Result<(), StoreError> {
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

/// Invites of one space that may be live (unexpired) at once: each is a row an
/// owner adds for free, so their number is bounded rather than metered.
pub const MAX_LIVE_INVITES: u64 = 1000;

/// Moves an upload's deadline (never earlier); changes no row if there is no such
/// upload. Parameters: user id, address, new deadline.
const MOVE_DEADLINE: &str =
    "UPDATE uploads SET expires_at_ms = max(expires_at_ms, ?3) WHERE user_id = ?1 AND address = ?2";

/// `charge` for a refund, which is never refused.
fn refund(conn: &Connection, user_id: &str, bytes: u64) -> Result<(), StoreError> {
    charge(conn, user_id, -int(bytes), u64::MAX)
}

/// Appends a change to `user_id`'s log, drops the key's earlier change and prunes
/// the log to its last `retain` entries, inside the caller's transaction.
fn append_change(
    tx: &Connection,
    (user_id, retain): (&str, u64),
    collection: &str,
    id: &str,
    value: Option<&StoredValue>,
) -> rusqlite::Result<u64> {
    let seq: i64 =
        tx.row("UPDATE users SET kv_seq = kv_seq + 1 WHERE user_id = ?1 RETURNING kv_seq", [user_id], |r| r.get(0))?;
    // The key's earlier change goes first, found by key (kv_changes_by_key): the log
    // keeps one change per key.
    tx.exec(
        "DELETE FROM kv_changes WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
        params![user_id, collection, id],
    )?;
    let (sealed, json, mac) = value.map(value_columns).unwrap_or((None, None, None));
    tx.exec(
        "INSERT INTO kv_changes (user_id, seq, collection, id, sealed, plain_json, plain_mac)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![user_id, seq, collection, id, sealed, json, mac],
    )?;
    tx.exec("DELETE FROM kv_changes WHERE user_id = ?1 AND seq <= ?2", params![user_id, seq - int(retain)])?;
    Ok(uint(seq))
}

/// Reads a role stored as its wire name.
fn role_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Role> {
    let text: String = row.get(at)?;
    match text.as_str() {
        "reader" => Ok(Role::Reader),
        "writer" => Ok(Role::Writer),
        "owner" => Ok(Role::Owner),
        _ => Err(rusqlite::Error::FromSqlConversionFailure(at, Type::Text, format!("unknown role {text:?}").into())),
    }
}

/// `user_id`'s role in the space, if it is at least `needed`: [`StoreError::NotMember`]
/// for outsiders (and for spaces that do not exist), [`StoreError::RoleTooLow`] for
/// members below `needed`.
fn require(conn: &Connection, space_id: &str, user_id: &str, needed: Role) -> Result<Role, StoreError> {
    let role = conn
        .row("SELECT role FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id], |r| {
            role_at(r, 0)
        })
        .optional()?;
    match role {
        None => Err(StoreError::NotMember),
        Some(role) if role < needed => Err(StoreError::RoleTooLow { needed }),
        Some(role) => Ok(role),
    }
}

/// `user_id`'s membership of the space, if any.
fn membership(conn: &Connection, space_id: &str, user_id: &str) -> rusqlite::Result<Option<Membership>> {
    conn.row(
        "SELECT s.space_id, s.sealed_name, m.role, s.created_at_ms
         FROM members m JOIN spaces s ON s.space_id = m.space_id
         WHERE m.space_id = ?1 AND m.user_id = ?2",
        params![space_id, user_id],
        membership_from_row,
    )
    .optional()
}

fn membership_from_row(row: &Row<'_>) -> rusqlite::Result<Membership> {
    Ok(Membership {
        space_id: row.get(0)?,
        sealed_name: row.get(1)?,
        role: role_at(row, 2)?,
        created_at_ms: uint(row.get(3)?),
    })
}

/// How many members, and how many owners, the space has.
fn head_count(conn: &Connection, space_id: &str) -> rusqlite::Result<(u64, u64)> {
    conn.row(
        "SELECT count(*), count(*) FILTER (WHERE role = 'owner') FROM members WHERE space_id = ?1",
        [space_id],
        |r| Ok((uint(r.get(0)?), uint(r.get(1)?))),
    )
}

/// Bytes the space's committed files hold.
fn space_used_bytes(conn: &Connection, space_id: &str) -> rusqlite::Result<u64> {
    conn.row(
        "SELECT coalesce(sum(stored_bytes), 0) FROM files WHERE space_id = ?1 AND state = 'live'",
        [space_id],
        |r| r.get(0).map(uint),
    )
}

/// Withdraws files of a space that are not gone yet — `file_id`, or up to `limit`
/// of any — refunding whoever paid for them. Returns how many it withdrew.
fn withdraw_files(tx: &Connection, space_id: &str, file_id: Option<&str>, limit: usize) -> Result<usize, StoreError> {
    let payers = {
        let mut stmt = match file_id {
            Some(_) => tx.prepare_cached(
                "UPDATE files SET state = 'gone' WHERE space_id = ?1 AND file_id = ?2 AND state <> 'gone' AND ?3 > 0
                 RETURNING created_by, charged_bytes",
            )?,
            None => tx.prepare_cached(
                "UPDATE files SET state = 'gone' WHERE rowid IN
                    (SELECT rowid FROM files WHERE space_id = ?1 AND state <> 'gone' LIMIT ?3)
                 RETURNING created_by, charged_bytes",
            )?,
        };
        let rows = stmt.query_map(params![space_id, file_id, int(limit as u64)], |r| {
            Ok((r.get::<_, String>(0)?, uint(r.get(1)?)))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for (payer, bytes) in &payers {
        refund(tx, payer, *bytes)?;
    }
    Ok(payers.len())
}

/// Drops up to `limit` references held by files of a space — `file_id`'s, or any —
/// which must all be gone. Returns how many it dropped, and the shards no file
/// references any more.
fn drop_references(
    tx: &Connection,
    space_id: &str,
    file_id: Option<&str>,
    limit: usize,
) -> Result<(usize, Vec<ShardAddress>), StoreError> {
    let addresses = {
        let mut stmt = match file_id {
            Some(_) => tx.prepare_cached(
                "DELETE FROM file_shards WHERE space_id = ?1 AND file_id = ?2 AND address IN
                    (SELECT address FROM file_shards WHERE space_id = ?1 AND file_id = ?2 LIMIT ?3)
                 RETURNING address",
            )?,
            None => tx.prepare_cached(
                "DELETE FROM file_shards WHERE (space_id, file_id, address) IN
                    (SELECT space_id, file_id, address FROM file_shards WHERE space_id = ?1 LIMIT ?3)
                 RETURNING address",
            )?,
        };
        let rows = stmt.query_map(params![space_id, file_id, int(limit as u64)], |r| r.get::<_, [u8; 32]>(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    Ok((addresses.len(), unreferenced(tx, addresses)?))
}

/// Of these addresses, those that no committed file references.
fn unreferenced(conn: &Connection, addresses: Vec<[u8; 32]>) -> rusqlite::Result<Vec<ShardAddress>> {
    let mut stmt = conn.prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM file_shards WHERE address = ?1)")?;
    let mut free = Vec::new();
    for address in addresses {
        if stmt.query_row([address], |r| r.get::<_, bool>(0))? {
            free.push(ShardAddress::from_bytes(address));
        }
    }
    Ok(free)
}

/// What [`list_shards`] found.
struct Listed {
    /// Bytes the listed shards hold.
    stored_bytes: u64,
    /// Bytes of the writer's own pending uploads among them.
    settled_bytes: u64,
}

/// Puts `shards` (distinct) in the connection's `temp.listed`, and checks with one
/// set query over it that each is stored and is either `file`'s creator's own
/// pending upload or already used by a live file of the same space. A shard someone
/// else uploaded counts as missing to this writer: they upload it too (and pay for
/// it), so no one pins another's shards by naming them.
fn list_shards(conn: &Connection, file: &NewFile, shards: &[ShardAddress]) -> Result<Listed, StoreError> {
    conn.exec("CREATE TEMP TABLE IF NOT EXISTS listed (address BLOB PRIMARY KEY) WITHOUT ROWID", [])?;
    conn.exec("DELETE FROM temp.listed", [])?;
    {
        let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO temp.listed (address) VALUES (?1)")?;
        for address in shards {
            stmt.execute([address.as_bytes()])?;
        }
    }
    let (listed, stored, stored_bytes, not_theirs, settled): (i64, i64, i64, i64, i64) = conn.row(
        "SELECT count(*), count(s.address), coalesce(sum(s.size), 0),
                count(*) FILTER (WHERE s.address IS NOT NULL AND u.address IS NULL
                    AND NOT EXISTS (SELECT 1 FROM file_shards f JOIN files x
                                    ON x.space_id = f.space_id AND x.file_id = f.file_id
                                    WHERE f.address = l.address AND f.space_id = ?2 AND x.state = 'live')),
                coalesce(sum(u.size), 0)
         FROM temp.listed l LEFT JOIN shards s ON s.address = l.address
         LEFT JOIN uploads u ON u.user_id = ?1 AND u.address = l.address",
        params![file.created_by, file.space_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let missing = (uint(listed - stored) + uint(not_theirs)) as usize;
    if missing > 0 {
        return Err(StoreError::MissingShards { missing, listed: file.shards.len() });
    }
    Ok(Listed { stored_bytes: uint(stored_bytes), settled_bytes: uint(settled) })
}

/// Refuses a file whose id is used in its space.
fn file_id_free(conn: &Connection, file: &NewFile) -> Result<(), StoreError> {
    let taken = conn
        .row("SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2", params![file.space_id, file.file_id], |_| {
            Ok(())
        })
        .optional()?;
    match taken {
        Some(()) => Err(StoreError::FileTaken),
        None => Ok(()),
    }
}

/// Refuses a file whose shards hold `stored_bytes` if the space, or its creator
/// (who has `settled_bytes` of them as pending uploads already charged), would go
/// past `quotas`.
fn fits(
    conn: &Connection,
    file: &NewFile,
    stored_bytes: u64,
    settled_bytes: u64,
    quotas: Quotas,
) -> Result<(), StoreError> {
    if stored_bytes > file.max_shard_bytes {
        return Err(StoreError::OverDeclared { stored: stored_bytes, bound: file.max_shard_bytes });
    }
    let used = space_used_bytes(conn, &file.space_id)?;
    if used.saturating_add(stored_bytes) > quotas.space_bytes {
        return Err(StoreError::QuotaExceeded {
            limit: Quota::Space,
            used,
            adding: stored_bytes,
            quota: quotas.space_bytes,
        });
    }
    let cost = file_cost(stored_bytes, file.shards.len(), file.sealed_record.len());
    let used: i64 = conn.row("SELECT used_bytes FROM users WHERE user_id = ?1", [&file.created_by], |r| r.get(0))?;
    let adding = cost.saturating_sub(settled_bytes);
    if uint(used).saturating_add(adding) > quotas.user_bytes {
        return Err(StoreError::QuotaExceeded {
            limit: Quota::User,
            used: uint(used),
            adding,
            quota: quotas.user_bytes,
        });
    }
    Ok(())
}

/// One step of a commit ([`Records::draft_file`]) in the caller's transaction.
fn draft_step(tx: &Connection, file: &NewFile, range: Range<usize>, expires_at_ms: u64) -> Result<(), StoreError> {
    let slice = file.shards.get(range.clone()).ok_or(StoreError::Backend("a step past the list".into()))?;
    require(tx, &file.space_id, &file.created_by, Role::Writer)?;
    if range.start == 0 {
        file_id_free(tx, file)?;
        tx.exec(
            &format!(
                "INSERT INTO files ({FILE_COLUMNS}, charged_bytes, state, expires_at_ms)
                 VALUES (?1, ?2, x'', 0, ?3, ?4, 0, 'draft', ?5)"
            ),
            params![file.space_id, file.file_id, file.created_by, int(file.created_at_ms), int(expires_at_ms)],
        )?;
    }
    let drafted = tx
        .row(
            "SELECT stored_bytes FROM files
             WHERE space_id = ?1 AND file_id = ?2 AND state = 'draft' AND created_by = ?3",
            params![file.space_id, file.file_id, file.created_by],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .ok_or(StoreError::CommitWithdrawn)?;
    // Presence is checked here, inside the transaction that adds the references:
    // a shard collected a moment ago is missing now, and one present now cannot
    // be collected once this commits (see crate::gc).
    let listed = list_shards(tx, file, slice)?;
    let stored_bytes = uint(drafted).saturating_add(listed.stored_bytes);
    if stored_bytes > file.max_shard_bytes {
        return Err(StoreError::OverDeclared { stored: stored_bytes, bound: file.max_shard_bytes });
    }
    // The writer's uploads of these shards are settled into the draft: their
    // charge moves to it.
    let settled = int(listed.settled_bytes);
    let listed = int(slice.len() as u64);
    tx.exec(
        "DELETE FROM uploads WHERE user_id = ?1 AND address IN (SELECT address FROM temp.listed)",
        [&file.created_by],
    )?;
    tx.exec(
        "INSERT INTO file_shards (space_id, file_id, address) SELECT ?1, ?2, address FROM temp.listed",
        params![file.space_id, file.file_id],
    )?;
    tx.exec(
        "UPDATE files SET stored_bytes = ?3, charged_bytes = charged_bytes + ?4,
                          shard_count = shard_count + ?5, expires_at_ms = ?6
         WHERE space_id = ?1 AND file_id = ?2",
        params![file.space_id, file.file_id, int(stored_bytes), settled, listed, int(expires_at_ms)],
    )?;
    tx.exec("DELETE FROM temp.listed", [])?;
    Ok(())
}

/// The last step of a commit ([`Records::seal_draft`]) in the caller's transaction.
fn seal(tx: &Connection, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
    require(tx, &file.space_id, &file.created_by, Role::Writer)?;
    let (stored_bytes, settled, count) = tx
        .row(
            "SELECT stored_bytes, charged_bytes, shard_count FROM files
             WHERE space_id = ?1 AND file_id = ?2 AND state = 'draft' AND created_by = ?3",
            params![file.space_id, file.file_id, file.created_by],
            |r| Ok((uint(r.get(0)?), r.get::<_, i64>(1)?, uint(r.get(2)?))),
        )
        .optional()?
        .ok_or(StoreError::CommitWithdrawn)?;
    if count != file.shards.len() as u64 {
        return Err(StoreError::Backend(format!("a draft of {count} shards sealed as {}", file.shards.len())));
    }
    fits(tx, file, stored_bytes, uint(settled), quotas)?;
    let charged = file_cost(stored_bytes, file.shards.len(), file.sealed_record.len());
    charge(tx, &file.created_by, int(charged) - settled, u64::MAX)?;
    tx.exec(
        "UPDATE files SET state = 'live', sealed_record = ?3, charged_bytes = ?4, created_at_ms = ?5, expires_at_ms = 0
         WHERE space_id = ?1 AND file_id = ?2",
        params![file.space_id, file.file_id, file.sealed_record, int(charged), int(file.created_at_ms)],
    )?;
    Ok(FileRecord {
        space_id: file.space_id.clone(),
        file_id: file.file_id.clone(),
        sealed_record: file.sealed_record.clone(),
        stored_bytes,
        created_by: file.created_by.clone(),
        created_at_ms: file.created_at_ms,
    })
}

const FILE_COLUMNS: &str = "space_id, file_id, sealed_record, stored_bytes, created_by, created_at_ms";

fn file_from_row(row: &Row<'_>) -> rusqlite::Result<FileRecord> {
    Ok(FileRecord {
        space_id: row.get(0)?,
        file_id: row.get(1)?,
        sealed_record: row.get(2)?,
        stored_bytes: uint(row.get(3)?),
        created_by: row.get(4)?,
        created_at_ms: uint(row.get(5)?),
    })
}

impl Records for SqliteRecords {
    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.to_owned();
        self.write(move |tx| {
            let user = &user;
            let c = &user.credentials;
            let result = tx.exec(
                &format!("INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)"),
                params![
                    user.user_id,
                    user.username,
                    c.salt,
                    c.kdf.alg,
                    c.kdf.mem_kib,
                    c.kdf.iterations,
                    c.kdf.parallelism,
                    c.login_public_key,
                    c.wrapped_root
                ],
            );
            match result {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::UsernameTaken)
                }
                Err(e) => Err(backend(e)),
            }
        })
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.reader()
            .row(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"), [username], user_from_row)
            .optional()
            .map_err(backend)
    }

    fn replace_credentials(
        &self,
        user_id: &str,
        expected_public_key: &[u8; 32],
        new: &Credentials,
        keep_session: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let (user_id, expected_public_key, new, keep_session) =
            (user_id.to_owned(), expected_public_key.to_owned(), new.to_owned(), keep_session.to_owned());
        self.write(move |tx| {
            let (user_id, expected_public_key, new, keep_session) =
                (&user_id, &expected_public_key, &new, &keep_session);
            let changed = tx
                .execute(
                    "UPDATE users SET salt = ?3, kdf_alg = ?4, kdf_mem_kib = ?5, kdf_iterations = ?6,
                        kdf_parallelism = ?7, login_public_key = ?8, wrapped_root = ?9
                 WHERE user_id = ?1 AND login_public_key = ?2",
                    params![
                        user_id,
                        expected_public_key,
                        new.salt,
                        new.kdf.alg,
                        new.kdf.mem_kib,
                        new.kdf.iterations,
                        new.kdf.parallelism,
                        new.login_public_key,
                        new.wrapped_root
                    ],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Ok(false);
            }
            tx.exec("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2", params![user_id, keep_session])
                .map_err(backend)?;
            Ok(true)
        })
    }

    fn create_session(
        &self,
        token_hash: &[u8; 32],
        user_id: &str,
        expires_at_ms: u64,
        now_ms: u64,
        keep_at_most: usize,
    ) -> Result<(), StoreError> {
        let (token_hash, user_id) = (token_hash.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let (token_hash, user_id) = (&token_hash, &user_id);
            tx.exec("DELETE FROM sessions WHERE expires_at_ms <= ?1", [int(now_ms)]).map_err(backend)?;
            tx.exec(
                "INSERT INTO sessions (token_hash, user_id, expires_at_ms) VALUES (?1, ?2, ?3)",
                params![token_hash, user_id, int(expires_at_ms)],
            )
            .map_err(backend)?;
            // Rowids grow with each insert, so the smallest are the oldest sessions.
            tx.exec(
                "DELETE FROM sessions WHERE user_id = ?1 AND rowid NOT IN
               (SELECT rowid FROM sessions WHERE user_id = ?1 ORDER BY rowid DESC LIMIT ?2)",
                params![user_id, int(keep_at_most.max(1) as u64)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<Option<Session>, StoreError> {
        self.reader()
            .row(
                "SELECT s.user_id, u.username, u.kv_seq, s.expires_at_ms
                 FROM sessions s JOIN users u ON u.user_id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at_ms > ?2",
                params![token_hash, int(now_ms)],
                |r| {
                    Ok(Session {
                        user_id: r.get(0)?,
                        username: r.get(1)?,
                        kv_seq: uint(r.get(2)?),
                        expires_at_ms: uint(r.get(3)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.write(move |tx| {
            let token_hash = &token_hash;
            tx.row("DELETE FROM sessions WHERE token_hash = ?1 RETURNING user_id", [token_hash], |r| r.get(0))
                .optional()
                .map_err(backend)
        })
    }

    fn create_challenge(&self, challenge: &Challenge, now_ms: u64) -> Result<(), StoreError> {
        let challenge = challenge.to_owned();
        self.write(move |tx| {
            let challenge = &challenge;
            tx.exec("DELETE FROM challenges WHERE expires_at_ms <= ?1", [int(now_ms)]).map_err(backend)?;
            tx.exec(
                "INSERT INTO challenges (challenge_id, username, challenge, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![challenge.challenge_id, challenge.username, challenge.challenge, int(challenge.expires_at_ms)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn take_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>, StoreError> {
        let challenge_id = challenge_id.to_owned();
        self.write(move |tx| {
            let challenge_id = &challenge_id;
            tx.row(
                "DELETE FROM challenges WHERE challenge_id = ?1
                 RETURNING challenge_id, username, challenge, expires_at_ms",
                [challenge_id],
                |r| {
                    Ok(Challenge {
                        challenge_id: r.get(0)?,
                        username: r.get(1)?,
                        challenge: r.get(2)?,
                        expires_at_ms: uint(r.get(3)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
    }

    fn kv_get(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<StoredValue>, StoreError> {
        stored_value(&self.reader(), user_id, collection, id)
    }

    fn kv_set(
        &self,
        user_id: &str,
        collection: &str,
        id: &str,
        value: &StoredValue,
        allowance: u64,
    ) -> Result<u64, StoreError> {
        let (user_id, collection, id, value) =
            (user_id.to_owned(), collection.to_owned(), id.to_owned(), value.to_owned());
        let retain = self.retain;
        self.write(move |tx| {
            let (user_id, collection, id, value) = (&user_id, &collection, &id, &value);
            let old = stored_value(tx, user_id, collection, id)?;
            let delta =
                int(kv_cost(collection, id, value)) - old.as_ref().map_or(0, |v| int(kv_cost(collection, id, v)));
            charge(tx, user_id, delta, allowance)?;
            let (sealed, json, mac) = value_columns(value);
            tx.exec(
                "INSERT INTO kv (user_id, collection, id, sealed, plain_json, plain_mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (user_id, collection, id)
                 DO UPDATE SET sealed = excluded.sealed, plain_json = excluded.plain_json, plain_mac = excluded.plain_mac",
                params![user_id, collection, id, sealed, json, mac],
            )
            .map_err(backend)?;
            let seq = append_change(tx, (user_id, retain), collection, id, Some(value)).map_err(backend)?;
            Ok(seq)
        })
    }

    fn kv_delete(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let (user_id, collection, id) = (user_id.to_owned(), collection.to_owned(), id.to_owned());
        let retain = self.retain;
        self.write(move |tx| {
            let (user_id, collection, id) = (&user_id, &collection, &id);
            let Some(old) = stored_value(tx, user_id, collection, id)? else { return Ok(None) };
            tx.exec(
                "DELETE FROM kv WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
                params![user_id, collection, id],
            )
            .map_err(backend)?;
            refund(tx, user_id, kv_cost(collection, id, &old))?;
            let seq = append_change(tx, (user_id, retain), collection, id, None).map_err(backend)?;
            Ok(Some(seq))
        })
    }

    fn kv_list(&self, user_id: &str, collection: &str, page: &PageRequest) -> Result<Page<String>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM kv WHERE user_id = ?1 AND collection = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
        )?;
        let after = page.after.as_deref().unwrap_or("");
        let ids = stmt
            .query_map(params![user_id, collection, after, int(page.limit as u64 + 1)], |r| {
                let id: String = r.get(0)?;
                Ok((id.clone(), id))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(paged(ids, page.limit))
    }

    fn changes_after(&self, user_id: &str, after: u64, limit: usize) -> Result<ChangeWindow, StoreError> {
        let mut conn = self.reader();
        // One read transaction: the head and the changes come from the same snapshot.
        let tx = conn.transaction().map_err(backend)?;
        let head: i64 = tx
            .row("SELECT kv_seq FROM users WHERE user_id = ?1", [user_id], |r| r.get(0))
            .optional()
            .map_err(backend)?
            .unwrap_or(0);
        let changes = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, collection, id, sealed, plain_json, plain_mac FROM kv_changes
                     WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(backend)?;
            stmt.query_map(params![user_id, int(after), int(limit as u64)], |r| {
                Ok(Change { seq: uint(r.get(0)?), collection: r.get(1)?, id: r.get(2)?, value: value_from_row(r, 3)? })
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?
        };
        tx.commit().map_err(backend)?;
        Ok(ChangeWindow { head: uint(head), floor: uint(head).saturating_sub(self.retain), changes })
    }

    fn used_bytes(&self, user_id: &str) -> Result<u64, StoreError> {
        let used = self
            .reader()
            .query_row("SELECT used_bytes FROM users WHERE user_id = ?1", [user_id], |r| r.get(0))
            .optional()?;
        Ok(used.map_or(0, uint))
    }

    fn record_upload(
        &self,
        user_id: &str,
        address: &ShardAddress,
        size: u64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let (user_id, address) = (user_id.to_owned(), address.to_owned());
        self.write(move |tx| {
            let (user_id, address) = (&user_id, &address);
            tx.exec(
                "INSERT INTO shards (address, size, stored_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (address) DO UPDATE
             SET size = excluded.size, stored_at_ms = max(stored_at_ms, excluded.stored_at_ms)",
                params![address.as_bytes(), int(size), int(now_ms)],
            )?;
            let moved = tx.exec(MOVE_DEADLINE, params![user_id, address.as_bytes(), int(expires_at_ms)])?;
            if moved == 0 {
                tx.exec(
                    "INSERT INTO uploads (user_id, address, size, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![user_id, address.as_bytes(), int(size), int(expires_at_ms)],
                )?;
                // Checked before the bytes were written (crate::gc); recorded whatever now.
                charge(tx, user_id, int(size), u64::MAX)?;
            }
            Ok(())
        })
    }

    fn touch_uploads(
        &self,
        user_id: &str,
        addresses: &[ShardAddress],
        expires_at_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let (user_id, addresses) = (user_id.to_owned(), addresses.to_owned());
        self.write(move |tx| {
            let (user_id, addresses) = (&user_id, &addresses);
            let present = {
                let mut stmt = tx.prepare_cached(MOVE_DEADLINE)?;
                addresses
                    .iter()
                    .map(|a| stmt.execute(params![user_id, a.as_bytes(), int(expires_at_ms)]).map(|n| n > 0))
                    .collect::<rusqlite::Result<Vec<bool>>>()?
            };
            Ok(present)
        })
    }

    fn expire_uploads(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.write(move |tx| {
            let expired = {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM uploads WHERE (user_id, address) IN
                   (SELECT user_id, address FROM uploads WHERE expires_at_ms <= ?1 LIMIT ?2)
                 RETURNING user_id, size",
                )?;
                stmt.query_map(params![int(now_ms), int(limit as u64)], |r| {
                    Ok((r.get::<_, String>(0)?, uint(r.get(1)?)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            for (user_id, size) in &expired {
                refund(tx, user_id, *size)?;
            }
            Ok(expired.len())
        })
    }

    fn shard_recorded(&self, address: &ShardAddress) -> Result<bool, StoreError> {
        let found = self
            .reader()
            .query_row("SELECT 1 FROM shards WHERE address = ?1", [address.as_bytes()], |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }

    fn collectable_shards(&self, stored_before_ms: u64, limit: usize) -> Result<Vec<ShardAddress>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT address FROM shards s
             WHERE stored_at_ms < ?1 AND NOT EXISTS (SELECT 1 FROM file_shards f WHERE f.address = s.address)
             AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.address = s.address)
             ORDER BY stored_at_ms LIMIT ?2",
        )?;
        let found = stmt
            .query_map(params![int(stored_before_ms), int(limit as u64)], |r| {
                r.get::<_, [u8; 32]>(0).map(ShardAddress::from_bytes)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(found)
    }

    fn forget_shards(
        &self,
        addresses: &[ShardAddress],
        stored_before_ms: u64,
    ) -> Result<Vec<ShardAddress>, StoreError> {
        let addresses = addresses.to_owned();
        self.write(move |tx| {
            let addresses = &addresses;
            let mut dropped = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM shards WHERE address = ?1 AND stored_at_ms < ?2
                 AND NOT EXISTS (SELECT 1 FROM file_shards WHERE address = ?1)
                 AND NOT EXISTS (SELECT 1 FROM uploads WHERE address = ?1)",
                )?;
                for address in addresses {
                    if stmt.execute(params![address.as_bytes(), int(stored_before_ms)])? > 0 {
                        dropped.push(*address);
                    }
                }
            }
            Ok(dropped)
        })
    }

    fn create_space(
        &self,
        space_id: &str,
        sealed_name: &[u8],
        owner: &str,
        now_ms: u64,
        allowance: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, sealed_name, owner) = (space_id.to_owned(), sealed_name.to_owned(), owner.to_owned());
        self.write(move |tx| {
            let (space_id, sealed_name, owner) = (&space_id, &sealed_name, &owner);
            let taken = tx.row("SELECT 1 FROM spaces WHERE space_id = ?1", [space_id], |_| Ok(())).optional()?;
            if taken.is_some() {
                return Err(StoreError::SpaceTaken);
            }
            let cost = space_cost(sealed_name.len());
            charge(tx, owner, int(cost), allowance)?;
            tx.exec(
                "INSERT INTO spaces (space_id, sealed_name, created_at_ms, created_by, charged_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
                params![space_id, sealed_name, int(now_ms), owner, int(cost)],
            )?;
            tx.exec(
                "INSERT INTO members (space_id, user_id, role, joined_at_ms) VALUES (?1, ?2, 'owner', ?3)",
                params![space_id, owner, int(now_ms)],
            )?;
            Ok(Membership {
                space_id: space_id.to_owned(),
                sealed_name: sealed_name.to_vec(),
                role: Role::Owner,
                created_at_ms: now_ms,
            })
        })
    }

    fn spaces_of(&self, user_id: &str, page: &PageRequest) -> Result<Page<Membership>, StoreError> {
        let (ms, rowid) = position(page)?;
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT s.space_id, s.sealed_name, m.role, s.created_at_ms, s.rowid
             FROM members m JOIN spaces s ON s.space_id = m.space_id
             WHERE m.user_id = ?1 AND (s.created_at_ms, s.rowid) > (?2, ?3)
             ORDER BY s.created_at_ms, s.rowid LIMIT ?4",
        )?;
        let spaces = stmt
            .query_map(params![user_id, ms, rowid, int(page.limit as u64 + 1)], |r| {
                Ok((membership_from_row(r)?, cursor_at(r, 3, 4)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(paged(spaces, page.limit))
    }

    fn create_invite(&self, actor: &str, invite: &Invite, now_ms: u64) -> Result<(), StoreError> {
        let (actor, invite) = (actor.to_owned(), invite.to_owned());
        self.write(move |tx| {
            let (actor, invite) = (&actor, &invite);
            require(tx, &invite.space_id, actor, Role::Owner)?;
            tx.exec(
                "DELETE FROM invites WHERE space_id = ?1 AND expires_at_ms <= ?2",
                params![invite.space_id, int(now_ms)],
            )?;
            let live: i64 = tx.row(
                "SELECT count(*) FROM invites WHERE space_id = ?1 AND secret_hash <> ?2",
                params![invite.space_id, invite.secret_hash],
                |r| r.get(0),
            )?;
            if uint(live) >= MAX_LIVE_INVITES {
                return Err(StoreError::TooManyInvites { max: MAX_LIVE_INVITES });
            }
            // The same secret registered again replaces the invite (its uses start over).
            tx.exec(
                "INSERT INTO invites (space_id, secret_hash, role, expires_at_ms, max_uses, uses, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
             ON CONFLICT (space_id, secret_hash) DO UPDATE SET role = excluded.role,
                 expires_at_ms = excluded.expires_at_ms, max_uses = excluded.max_uses, uses = 0,
                 created_by = excluded.created_by",
                params![
                    invite.space_id,
                    invite.secret_hash,
                    role_name(invite.role),
                    int(invite.expires_at_ms),
                    invite.max_uses,
                    actor
                ],
            )?;
            Ok(())
        })
    }

    fn join_space(
        &self,
        space_id: &str,
        secret_hash: &[u8; 32],
        user_id: &str,
        now_ms: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, secret_hash, user_id) = (space_id.to_owned(), secret_hash.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let (space_id, secret_hash, user_id) = (&space_id, &secret_hash, &user_id);
            // Found by the hash of the presented secret: the index compares hashes, which
            // tells a guesser nothing about any secret.
            let invite = tx
                .row(
                    "SELECT role, expires_at_ms, max_uses, uses FROM invites WHERE space_id = ?1 AND secret_hash = ?2",
                    params![space_id, secret_hash],
                    |r| Ok((role_at(r, 0)?, uint(r.get(1)?), uint(r.get(2)?), uint(r.get(3)?))),
                )
                .optional()?;
            let (role, expires_at_ms, max_uses, uses) = invite.ok_or(StoreError::InviteInvalid)?;
            if let Some(member) = membership(tx, space_id, user_id)? {
                return Ok(member);
            }
            if now_ms >= expires_at_ms {
                return Err(StoreError::InviteExpired);
            }
            if uses >= max_uses {
                return Err(StoreError::InviteUsedUp);
            }
            tx.exec(
                "UPDATE invites SET uses = uses + 1 WHERE space_id = ?1 AND secret_hash = ?2",
                params![space_id, secret_hash],
            )?;
            tx.exec(
                "INSERT INTO members (space_id, user_id, role, joined_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![space_id, user_id, role_name(role), int(now_ms)],
            )?;
            let member =
                membership(tx, space_id, user_id)?.ok_or_else(|| StoreError::Backend("member vanished".into()))?;
            Ok(member)
        })
    }

    fn members(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<Member>, StoreError> {
        let (ms, rowid) = position(page)?;
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let members = {
            let mut stmt = tx.prepare_cached(
                "SELECT m.user_id, u.username, m.role, m.joined_at_ms, m.rowid
                 FROM members m JOIN users u ON u.user_id = m.user_id
                 WHERE m.space_id = ?1 AND (m.joined_at_ms, m.rowid) > (?2, ?3)
                 ORDER BY m.joined_at_ms, m.rowid LIMIT ?4",
            )?;
            stmt.query_map(params![space_id, ms, rowid, int(page.limit as u64 + 1)], |r| {
                let member = Member {
                    user_id: r.get(0)?,
                    username: r.get(1)?,
                    role: role_at(r, 2)?,
                    joined_at_ms: uint(r.get(3)?),
                };
                Ok((member, cursor_at(r, 3, 4)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(paged(members, page.limit))
    }

    fn leave_space(&self, space_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let (space_id, user_id) = (space_id.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let (space_id, user_id) = (&space_id, &user_id);
            let role = require(tx, space_id, user_id, Role::Reader)?;
            let (members, owners) = head_count(tx, space_id)?;
            if members > 1 && role == Role::Owner && owners == 1 {
                return Err(StoreError::LastOwner);
            }
            tx.exec("DELETE FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id])?;
            if members == 1 {
                // The last member: the space goes, at once for everyone (no member is
                // left to reach it) and a step at a time for its files (Records::unwind).
                let (payer, bytes) = tx.row(
                    "UPDATE spaces SET gone = 1 WHERE space_id = ?1 RETURNING created_by, charged_bytes",
                    [space_id],
                    |r| Ok((r.get::<_, String>(0)?, uint(r.get(1)?))),
                )?;
                refund(tx, &payer, bytes)?;
                tx.exec("DELETE FROM invites WHERE space_id = ?1", [space_id])?;
            }
            Ok(members == 1)
        })
    }

    fn remove_member(&self, space_id: &str, actor: &str, user_id: &str) -> Result<(), StoreError> {
        let (space_id, actor, user_id) = (space_id.to_owned(), actor.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let (space_id, actor, user_id) = (&space_id, &actor, &user_id);
            require(tx, space_id, actor, Role::Owner)?;
            let role = tx
                .row("SELECT role FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id], |r| {
                    role_at(r, 0)
                })
                .optional()?
                .ok_or(StoreError::NoSuchMember)?;
            if role == Role::Owner && head_count(tx, space_id)?.1 == 1 {
                return Err(StoreError::LastOwner);
            }
            tx.exec("DELETE FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id])?;
            Ok(())
        })
    }

    fn space_usage(&self, space_id: &str, actor: &str) -> Result<u64, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let used = space_used_bytes(&tx, space_id)?;
        tx.commit()?;
        Ok(used)
    }

    fn step(&self) -> usize {
        self.step
    }

    fn check_commit(&self, file: &NewFile, quotas: Quotas) -> Result<(), StoreError> {
        let mut conn = self.checker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = conn.transaction()?;
        require(&tx, &file.space_id, &file.created_by, Role::Writer)?;
        file_id_free(&tx, file)?;
        let listed = list_shards(&tx, file, &file.shards)?;
        fits(&tx, file, listed.stored_bytes, listed.settled_bytes, quotas)?;
        tx.exec("DELETE FROM temp.listed", [])?;
        tx.commit()?;
        Ok(())
    }

    fn commit_whole(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        let file = file.to_owned();
        self.write(move |tx| {
            draft_step(tx, &file, 0..file.shards.len(), 0)?;
            seal(tx, &file, quotas)
        })
    }

    fn draft_file(&self, file: &NewFile, range: Range<usize>, expires_at_ms: u64) -> Result<(), StoreError> {
        // Cheap: the list is shared, not copied.
        let file = file.to_owned();
        self.write(move |tx| draft_step(tx, &file, range, expires_at_ms))
    }

    fn seal_draft(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        let file = file.to_owned();
        self.write(move |tx| seal(tx, &file, quotas))
    }

    fn abandon_draft(&self, space_id: &str, file_id: &str, creator: &str) -> Result<(), StoreError> {
        let (space_id, file_id, creator) = (space_id.to_owned(), file_id.to_owned(), creator.to_owned());
        self.write(move |tx| {
            let (space_id, file_id, creator) = (&space_id, &file_id, &creator);
            let draft = tx
                .row(
                    "SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'draft' AND created_by = ?3",
                    params![space_id, file_id, creator],
                    |_| Ok(()),
                )
                .optional()?;
            if draft.is_some() {
                withdraw_files(tx, space_id, Some(file_id), 1)?;
            }
            Ok(())
        })
    }

    fn unwind(&self, what: &Withdrawn, limit: usize) -> Result<Unwound, StoreError> {
        let limit = limit.max(1);
        let what = what.to_owned();
        self.write(move |tx| {
            let what = &what;
            let unwound = match what {
                Withdrawn::File { space_id, file_id } => {
                    let gone = tx
                        .row(
                            "SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'gone'",
                            params![space_id, file_id],
                            |_| Ok(()),
                        )
                        .optional()?;
                    if gone.is_none() {
                        return Ok(Unwound { freed: Vec::new(), done: true });
                    }
                    let (dropped, freed) = drop_references(tx, space_id, Some(file_id), limit)?;
                    let done = dropped < limit && {
                        tx.exec(
                            "DELETE FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'gone'
                                AND NOT EXISTS (SELECT 1 FROM file_shards WHERE space_id = ?1 AND file_id = ?2)",
                            params![space_id, file_id],
                        )? > 0
                    };
                    Unwound { freed, done }
                }
                Withdrawn::Space { space_id } => {
                    let gone = tx
                        .row("SELECT 1 FROM spaces WHERE space_id = ?1 AND gone = 1", [space_id], |_| Ok(()))
                        .optional()?;
                    if gone.is_none() {
                        return Ok(Unwound { freed: Vec::new(), done: true });
                    }
                    // First every file is withdrawn, then their references go, then the
                    // files, then the space.
                    if withdraw_files(tx, space_id, None, limit)? > 0 {
                        Unwound::default()
                    } else {
                        let (dropped, freed) = drop_references(tx, space_id, None, limit)?;
                        let done = dropped == 0
                        && tx.exec(
                            "DELETE FROM files WHERE rowid IN (SELECT rowid FROM files WHERE space_id = ?1 LIMIT ?2)",
                            params![space_id, int(limit as u64)],
                        )? == 0
                        && tx.exec("DELETE FROM spaces WHERE space_id = ?1", [space_id])? > 0;
                        Unwound { freed, done }
                    }
                }
            };
            Ok(unwound)
        })
    }

    fn withdrawn(&self, now_ms: u64, limit: usize) -> Result<Vec<Withdrawn>, StoreError> {
        self.write(move |tx| {
            let expired = {
                let mut stmt = tx.prepare_cached(
                    "SELECT space_id, file_id FROM files WHERE state = 'draft' AND expires_at_ms <= ?1 LIMIT ?2",
                )?;
                stmt.query_map(params![int(now_ms), int(limit as u64)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            for (space_id, file_id) in &expired {
                withdraw_files(tx, space_id, Some(file_id), 1)?;
            }
            let mut found = {
                let mut stmt = tx.prepare_cached("SELECT space_id FROM spaces WHERE gone = 1 LIMIT ?1")?;
                stmt.query_map([int(limit as u64)], |r| Ok(Withdrawn::Space { space_id: r.get(0)? }))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT space_id, file_id FROM files WHERE state = 'gone'
                 AND NOT EXISTS (SELECT 1 FROM spaces s WHERE s.space_id = files.space_id AND s.gone = 1) LIMIT ?1",
                )?;
                let files = stmt.query_map([int(limit as u64)], |r| {
                    Ok(Withdrawn::File { space_id: r.get(0)?, file_id: r.get(1)? })
                })?;
                found.extend(files.collect::<rusqlite::Result<Vec<_>>>()?);
            }
            found.truncate(limit);
            Ok(found)
        })
    }

    fn files(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<FileRecord>, StoreError> {
        let (ms, rowid) = position(page)?;
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let files = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {FILE_COLUMNS}, rowid FROM files WHERE space_id = ?1 AND state = 'live'
                 AND (created_at_ms, rowid) > (?2, ?3)
                 ORDER BY created_at_ms, rowid LIMIT ?4"
            ))?;
            stmt.query_map(params![space_id, ms, rowid, int(page.limit as u64 + 1)], |r| {
                Ok((file_from_row(r)?, cursor_at(r, 5, 6)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(paged(files, page.limit))
    }

    fn file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<Option<FileRecord>, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let file = tx
            .row(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'live'"),
                params![space_id, file_id],
                file_from_row,
            )
            .optional()?;
        tx.commit()?;
        Ok(file)
    }

    fn delete_file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<bool, StoreError> {
        let (space_id, file_id, actor) = (space_id.to_owned(), file_id.to_owned(), actor.to_owned());
        self.write(move |tx| {
            let (space_id, file_id, actor) = (&space_id, &file_id, &actor);
            require(tx, space_id, actor, Role::Writer)?;
            let live = tx
                .row(
                    "SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'live'",
                    params![space_id, file_id],
                    |_| Ok(()),
                )
                .optional()?;
            if live.is_some() {
                withdraw_files(tx, space_id, Some(file_id), 1)?;
            }
            Ok(live.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, key: u8) -> User {
        User {
            user_id: format!("id-{name}"),
            username: name.into(),
            credentials: Credentials {
                salt: [1; 16],
                kdf: KdfParams::default(),
                login_public_key: [key; 32],
                wrapped_root: vec![1; 61],
            },
            kv_seq: 0,
        }
    }

    fn open(retain: u64) -> (tempfile::TempDir, SqliteRecords) {
        let dir = tempfile::tempdir().unwrap();
        let records = SqliteRecords::open(dir.path(), retain).unwrap();
        (dir, records)
    }

    #[test]
    fn log_is_pruned_to_retain() {
        let (_dir, db) = open(3);
        db.create_user(&user("ada", 1)).unwrap();
        for i in 1..=5u64 {
            let set = db.kv_set("id-ada", "c", &format!("k{i}"), &StoredValue::Sealed(vec![1; 29]), u64::MAX);
            assert_eq!(set.unwrap(), i);
        }
        assert_eq!(db.kv_delete("id-ada", "c", "nope").unwrap(), None);
        assert_eq!(db.kv_delete("id-ada", "c", "k1").unwrap(), Some(6));
        let window = db.changes_after("id-ada", 0, 100).unwrap();
        assert_eq!((window.head, window.floor), (6, 3));
        let seqs: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [4, 5, 6], "only the last three are kept; a reader below the floor resyncs");
        assert_eq!(window.changes[2].value, None);
        let window = db.changes_after("id-ada", 4, 1).unwrap();
        assert_eq!(window.changes.len(), 1, "limit respected");
        assert_eq!(window.changes[0].seq, 5);
    }

    #[test]
    fn reopening_keeps_everything() {
        let (dir, db) = open(10);
        db.create_user(&user("ada", 1)).unwrap();
        let plain = StoredValue::Plain { json: "[1]".into(), mac: [9; 32] };
        db.kv_set("id-ada", "c", "i", &plain, u64::MAX).unwrap();
        drop(db);
        let db = SqliteRecords::open(dir.path(), 10).unwrap();
        assert_eq!(db.kv_get("id-ada", "c", "i").unwrap(), Some(plain));
        assert_eq!(db.user_by_name("ada").unwrap().unwrap().kv_seq, 1);
        assert_eq!(db.create_user(&user("ada", 2)), Err(StoreError::UsernameTaken));
    }

    #[test]
    fn a_key_rewritten_costs_one_value_in_the_log_and_the_allowance() {
        let (_dir, db) = open(10_000);
        db.create_user(&user("ada", 1)).unwrap();
        let value = StoredValue::Sealed(vec![1; 1000]);
        for _ in 0..200 {
            db.kv_set("id-ada", "c", "k", &value, u64::MAX).unwrap();
        }
        db.kv_set("id-ada", "c", "other", &value, u64::MAX).unwrap();
        let window = db.changes_after("id-ada", 0, 1000).unwrap();
        let seqs: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [200, 201], "only the latest change of each key is kept");
        assert_eq!(window.floor, 0, "nothing pruned: the holes are replaced changes");
        let cost = kv_cost("c", "k", &value);
        assert_eq!(db.used_bytes("id-ada").unwrap(), cost + kv_cost("c", "other", &value));
        // Past the allowance: refused, nothing written; a smaller value still fits.
        let big = StoredValue::Sealed(vec![1; 5000]);
        let used = db.used_bytes("id-ada").unwrap();
        let err = db.kv_set("id-ada", "c", "k", &big, used + 100).unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded { limit: Quota::User, .. }), "{err:?}");
        assert_eq!(db.kv_get("id-ada", "c", "k").unwrap(), Some(value));
        db.kv_set("id-ada", "c", "k", &StoredValue::Sealed(vec![1; 10]), used).unwrap();
        db.kv_delete("id-ada", "c", "k").unwrap();
        db.kv_delete("id-ada", "c", "other").unwrap();
        assert_eq!(db.used_bytes("id-ada").unwrap(), 0, "deleting refunds");
    }

    #[test]
    fn a_space_holds_a_bounded_number_of_live_invites() {
        let (_dir, db) = open(10);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_space("s", b"n", "id-ada", 0, u64::MAX).unwrap();
        let invite = |n: u64, expires_at_ms: u64| Invite {
            space_id: "s".into(),
            secret_hash: {
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&n.to_be_bytes());
                h
            },
            role: Role::Reader,
            expires_at_ms,
            max_uses: 1,
        };
        for n in 0..MAX_LIVE_INVITES {
            db.create_invite("id-ada", &invite(n, 100), 0).unwrap();
        }
        let more = db.create_invite("id-ada", &invite(MAX_LIVE_INVITES, 100), 0);
        assert_eq!(more, Err(StoreError::TooManyInvites { max: MAX_LIVE_INVITES }));
        db.create_invite("id-ada", &invite(0, 200), 0).expect("the same secret again replaces its invite");
        db.create_invite("id-ada", &invite(MAX_LIVE_INVITES, 300), 100).expect("expired ones make room");
    }

    #[test]
    fn challenges_are_taken_once() {
        let (_dir, db) = open(10);
        let ch =
            Challenge { challenge_id: "c1".into(), username: "ada".into(), challenge: [3; 32], expires_at_ms: 100 };
        db.create_challenge(&ch, 0).unwrap();
        assert_eq!(db.take_challenge("c1").unwrap(), Some(ch));
        assert_eq!(db.take_challenge("c1").unwrap(), None);
    }

    #[test]
    fn credentials_change_only_from_the_expected_key() {
        let (_dir, db) = open(10);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_session(&[1; 32], "id-ada", 1_000, 0, 10).unwrap();
        db.create_session(&[2; 32], "id-ada", 1_000, 0, 10).unwrap();
        let new = user("ada", 7).credentials;
        assert!(!db.replace_credentials("id-ada", &[9; 32], &new, &[1; 32]).unwrap(), "stale key");
        assert!(db.session(&[2; 32], 0).unwrap().is_some(), "nothing revoked by a refused change");
        assert!(db.replace_credentials("id-ada", &[1; 32], &new, &[1; 32]).unwrap());
        assert_eq!(db.user_by_name("ada").unwrap().unwrap().credentials, new);
        assert!(db.session(&[1; 32], 0).unwrap().is_some());
        assert!(db.session(&[2; 32], 0).unwrap().is_none());
        assert!(db.session(&[1; 32], 1_000).unwrap().is_none(), "expired at its expiry");
    }

    #[test]
    fn signing_in_past_the_session_cap_revokes_the_oldest() {
        let (_dir, db) = open(10);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_user(&user("bob", 2)).unwrap();
        db.create_session(&[9; 32], "id-bob", 1_000, 0, 2).unwrap();
        for n in 1..=4u8 {
            db.create_session(&[n; 32], "id-ada", 1_000, 0, 2).unwrap();
        }
        let live: Vec<bool> = (1..=4u8).map(|n| db.session(&[n; 32], 0).unwrap().is_some()).collect();
        assert_eq!(live, [false, false, true, true]);
        assert!(db.session(&[9; 32], 0).unwrap().is_some(), "another user's sessions are not counted");
    }

    #[test]
    fn a_version_1_database_is_migrated_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let db = SqliteRecords::open(dir.path(), 10).unwrap();
        db.create_user(&user("ada", 1)).unwrap();
        drop(db);
        let db = SqliteRecords::open(dir.path(), 10).unwrap();
        let version: i64 = db.reader().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert!(db.user_by_name("ada").unwrap().is_some());
        db.create_space("s1", b"name", "id-ada", 5, u64::MAX).unwrap();
        assert_eq!(db.spaces_of("id-ada", &PageRequest { after: None, limit: 10 }).unwrap().items.len(), 1);

        db.write(|tx| tx.pragma_update(None, "user_version", SCHEMA_VERSION + 1).map_err(backend)).unwrap();
        drop(db);
        assert!(SqliteRecords::open(dir.path(), 10).is_err(), "a newer schema is refused");
    }

    #[test]
    fn shard_stamps_references_and_collection() {
        let (_dir, db) = open(10);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_space("s1", b"name", "id-ada", 0, u64::MAX).unwrap();
        let (a, b) = (ShardAddress::of(b"a"), ShardAddress::of(b"b"));
        db.record_upload("id-ada", &a, 10, 100, 100).unwrap();
        db.record_upload("id-ada", &b, 20, 100, 100).unwrap();
        db.record_upload("id-ada", &b, 20, 50, 100).unwrap();
        assert!(db.collectable_shards(u64::MAX, 10).unwrap().is_empty(), "pinned by their uploads");
        assert_eq!(db.expire_uploads(100, 10).unwrap(), 2);
        let mut old = db.collectable_shards(101, 10).unwrap();
        old.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(old, both);
        assert!(db.collectable_shards(100, 10).unwrap().is_empty(), "a stamp never moves back");
        db.record_upload("id-ada", &a, 10, 200, 300).unwrap();
        db.record_upload("id-ada", &b, 20, 200, 300).unwrap();
        assert_eq!(db.touch_uploads("id-ada", &[b, ShardAddress::of(b"c")], 400).unwrap(), [true, false]);
        assert_eq!(db.expire_uploads(300, 10).unwrap(), 1, "a's upload ends; b's was moved");

        let file = NewFile {
            space_id: "s1".into(),
            file_id: "f1".into(),
            sealed_record: vec![1; 30],
            shards: vec![a, b].into(),
            max_shard_bytes: u64::MAX,
            created_by: "id-ada".into(),
            created_at_ms: 300,
        };
        db.record_upload("id-ada", &a, 10, 300, 400).unwrap();
        let quotas = |space_bytes| Quotas { space_bytes, user_bytes: u64::MAX };
        assert_eq!(
            db.commit_file(&file, quotas(29), u64::MAX),
            Err(StoreError::QuotaExceeded { limit: Quota::Space, used: 0, adding: 30, quota: 29 })
        );
        // Refused in one step: nothing changed, the uploads still charged and pinned.
        assert!(db.withdrawn(u64::MAX, 10).unwrap().is_empty());
        assert_eq!(db.used_bytes("id-ada").unwrap(), space_cost(4) + 30);
        assert_eq!(db.touch_uploads("id-ada", &[a, b], 400).unwrap(), [true, true]);
        assert_eq!(db.commit_file(&file, quotas(30), u64::MAX).unwrap().stored_bytes, 30, "each shard counted once");
        assert!(db.collectable_shards(u64::MAX, 10).unwrap().is_empty(), "referenced shards are not candidates");
        assert!(db.forget_shards(&[a], u64::MAX).unwrap().is_empty(), "a referenced shard is kept");
        let more = NewFile { file_id: "f2".into(), shards: vec![ShardAddress::of(b"gone")].into(), ..file.clone() };
        assert_eq!(
            db.commit_file(&more, Quotas::NONE, u64::MAX),
            Err(StoreError::MissingShards { missing: 1, listed: 1 })
        );
        assert_eq!(db.commit_file(&file, Quotas::NONE, u64::MAX), Err(StoreError::FileTaken));

        assert!(db.delete_file("s1", "f1", "id-ada").unwrap());
        let f1 = Withdrawn::File { space_id: "s1".into(), file_id: "f1".into() };
        assert!(db.files("s1", "id-ada", &PageRequest { after: None, limit: 10 }).unwrap().items.is_empty());
        assert_eq!(db.withdrawn(0, 10).unwrap(), std::slice::from_ref(&f1));
        let mut freed = db.unwind(&f1, 10).unwrap();
        assert!(freed.done);
        freed.freed.sort();
        assert_eq!(freed.freed, both);
        assert!(!db.delete_file("s1", "f1", "id-ada").unwrap());
        assert_eq!(db.forget_shards(&[a], u64::MAX).unwrap(), [a]);
        assert!(!db.shard_recorded(&a).unwrap());
        assert!(db.forget_shards(&[b], 150).unwrap().is_empty(), "too recent for the collector");
        assert_eq!(db.forget_shards(&[b], 301).unwrap(), [b]);
    }

    /// `n` shards of `size` bytes that `user_id` uploaded, pinned until `expires_at_ms`.
    fn uploaded(db: &SqliteRecords, user_id: &str, n: u32, size: u64, expires_at_ms: u64) -> Vec<ShardAddress> {
        let shards: Vec<ShardAddress> = (0..n).map(|i| ShardAddress::of(format!("{user_id}-{i}").as_bytes())).collect();
        for address in &shards {
            db.record_upload(user_id, address, size, 0, expires_at_ms).unwrap();
        }
        shards
    }

    fn new_file(space_id: &str, file_id: &str, created_by: &str, shards: Vec<ShardAddress>) -> NewFile {
        NewFile {
            space_id: space_id.into(),
            file_id: file_id.into(),
            sealed_record: vec![1; 40],
            shards: shards.into(),
            max_shard_bytes: u64::MAX,
            created_by: created_by.into(),
            created_at_ms: 1,
        }
    }

    fn drafts(db: &SqliteRecords) -> i64 {
        db.reader().query_row("SELECT count(*) FROM files WHERE state = 'draft'", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn other_writes_come_between_the_steps_of_a_commit() {
        let (_dir, db) = open(10);
        let db = std::sync::Arc::new(db.with_step(4));
        db.create_user(&user("ada", 1)).unwrap();
        db.create_user(&user("bob", 2)).unwrap();
        db.create_space("s", b"name", "id-ada", 0, u64::MAX).unwrap();
        let shards = uploaded(&db, "id-ada", 2000, 10, u64::MAX);
        let file = new_file("s", "f", "id-ada", shards);
        let committer = {
            let db = std::sync::Arc::clone(&db);
            std::thread::spawn(move || db.commit_file(&file, Quotas::NONE, u64::MAX))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while drafts(&db) == 0 {
            assert!(std::time::Instant::now() < deadline, "the commit never started");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Bob's write waits for one step at most, not for the whole commit.
        db.kv_set("id-bob", "c", "k", &StoredValue::Sealed(vec![1; 29]), u64::MAX).unwrap();
        assert_eq!(drafts(&db), 1, "bob's write went in between two steps of ada's commit");
        let committed = committer.join().unwrap().unwrap();
        assert_eq!(committed.stored_bytes, 20_000);
        assert_eq!(drafts(&db), 0);
        let charged = file_cost(20_000, 2000, 40) + space_cost(4);
        assert_eq!(db.used_bytes("id-ada").unwrap(), charged, "the uploads became the file");
    }

    #[test]
    fn a_commit_of_many_steps_is_refused_before_its_first() {
        let (_dir, db) = open(10);
        let db = db.with_step(2);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_space("s", b"name", "id-ada", 0, u64::MAX).unwrap();
        let shards = uploaded(&db, "id-ada", 5, 10, u64::MAX);
        let used = db.used_bytes("id-ada").unwrap();
        let mut listed = shards.clone();
        listed.push(ShardAddress::of(b"never uploaded"));
        let refusals = [
            (new_file("s", "f", "id-ada", listed), Quotas::NONE),
            (new_file("s", "f", "id-ada", shards.clone()), Quotas { space_bytes: 49, user_bytes: u64::MAX }),
            (new_file("s", "f", "id-ada", shards.clone()), Quotas { space_bytes: u64::MAX, user_bytes: used + 10 }),
            (NewFile { max_shard_bytes: 49, ..new_file("s", "f", "id-ada", shards.clone()) }, Quotas::NONE),
        ];
        for (file, quotas) in refusals {
            let err = db.commit_file(&file, quotas, u64::MAX).unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::MissingShards { .. }
                        | StoreError::QuotaExceeded { .. }
                        | StoreError::OverDeclared { .. }
                ),
                "{err:?}"
            );
            assert_eq!(drafts(&db), 0, "refused before a draft was opened");
            assert!(db.withdrawn(u64::MAX, 10).unwrap().is_empty());
            assert_eq!(db.used_bytes("id-ada").unwrap(), used);
            assert_eq!(db.touch_uploads("id-ada", &shards, u64::MAX).unwrap(), [true; 5], "the uploads stay");
        }
        db.commit_file(&new_file("s", "f", "id-ada", shards), Quotas::NONE, u64::MAX).unwrap();
    }

    #[test]
    fn a_commit_that_never_finished_is_withdrawn_at_its_deadline() {
        let (_dir, db) = open(10);
        let db = db.with_step(2);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_space("s", b"name", "id-ada", 0, u64::MAX).unwrap();
        let shards = uploaded(&db, "id-ada", 5, 10, u64::MAX);
        let base = space_cost(4);
        let file = new_file("s", "f", "id-ada", shards.clone());
        // Two steps, then the accelerator stops.
        db.draft_file(&file, 0..2, 100).unwrap();
        db.draft_file(&file, 2..4, 100).unwrap();
        assert_eq!(db.used_bytes("id-ada").unwrap(), base + 50, "settled uploads moved their charge to the draft");
        assert!(db.files("s", "id-ada", &PageRequest { after: None, limit: 10 }).unwrap().items.is_empty());
        assert_eq!(db.draft_file(&new_file("s", "f", "id-ada", shards.clone()), 0..1, 100), Err(StoreError::FileTaken));
        assert!(db.withdrawn(99, 10).unwrap().is_empty(), "before its deadline a draft is left alone");
        let f = Withdrawn::File { space_id: "s".into(), file_id: "f".into() };
        assert_eq!(db.withdrawn(100, 10).unwrap(), std::slice::from_ref(&f));
        assert_eq!(db.used_bytes("id-ada").unwrap(), base + 10, "the draft is refunded; one upload is left");
        let (mut freed, mut steps) = (Vec::new(), 0);
        loop {
            let step = db.unwind(&f, 2).unwrap();
            freed.extend(step.freed);
            steps += 1;
            if step.done {
                break;
            }
        }
        assert!(steps > 1, "taken apart in steps");
        freed.sort();
        let mut settled = shards[..4].to_vec();
        settled.sort();
        assert_eq!(freed, settled);
        assert!(db.withdrawn(100, 10).unwrap().is_empty());
        // The id is free again.
        db.record_upload("id-ada", &shards[0], 10, 0, u64::MAX).unwrap();
        db.commit_file(&new_file("s", "f", "id-ada", vec![shards[0], shards[4]]), Quotas::NONE, u64::MAX).unwrap();
    }

    #[test]
    fn a_space_its_last_member_left_goes_a_step_at_a_time() {
        let (_dir, db) = open(10);
        let db = db.with_step(2);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_space("s", b"name", "id-ada", 0, u64::MAX).unwrap();
        let mut all = Vec::new();
        for f in ["f", "g", "h"] {
            let shards: Vec<ShardAddress> = (0..3).map(|i| ShardAddress::of(format!("{f}{i}").as_bytes())).collect();
            for a in &shards {
                db.record_upload("id-ada", a, 10, 0, u64::MAX).unwrap();
            }
            db.commit_file(&new_file("s", f, "id-ada", shards.clone()), Quotas::NONE, u64::MAX).unwrap();
            all.extend(shards);
        }
        // h's shards are also used in another space: they stay.
        db.create_space("t", b"name", "id-ada", 0, u64::MAX).unwrap();
        for a in &all[6..] {
            db.record_upload("id-ada", a, 10, 0, u64::MAX).unwrap();
        }
        db.commit_file(&new_file("t", "h", "id-ada", all[6..].to_vec()), Quotas::NONE, u64::MAX).unwrap();
        let kept = db.used_bytes("id-ada").unwrap() - 3 * file_cost(30, 3, 40) - space_cost(4);
        let references = || -> i64 {
            db.reader().query_row("SELECT count(*) FROM file_shards WHERE space_id = 's'", [], |r| r.get(0)).unwrap()
        };
        assert!(db.leave_space("s", "id-ada").unwrap(), "the last member's leaving withdraws the space");
        let none = PageRequest { after: None, limit: 10 };
        let spaces: Vec<String> =
            db.spaces_of("id-ada", &none).unwrap().items.into_iter().map(|m| m.space_id).collect();
        assert_eq!(spaces, ["t"], "gone for everyone at once");
        let files = 3 * file_cost(30, 3, 40);
        assert_eq!(db.used_bytes("id-ada").unwrap(), kept + files, "the space is refunded; its files as they go");
        let s = Withdrawn::Space { space_id: "s".into() };
        assert_eq!(db.withdrawn(0, 10).unwrap(), std::slice::from_ref(&s));
        let (mut freed, mut steps) = (Vec::new(), 0);
        loop {
            let before = references();
            let step = db.unwind(&s, 2).unwrap();
            assert!(before - references() <= 2, "a step drops at most its limit of references");
            freed.extend(step.freed);
            steps += 1;
            if step.done {
                break;
            }
        }
        assert!(steps > 5, "{steps} steps");
        assert_eq!(references(), 0);
        freed.sort();
        let mut only_s = all[..6].to_vec();
        only_s.sort();
        assert_eq!(freed, only_s, "the shards another space uses stay");
        assert_eq!(db.used_bytes("id-ada").unwrap(), kept, "the space and its files are refunded");
        assert!(db.withdrawn(0, 10).unwrap().is_empty());
        db.create_space("s", b"name", "id-ada", 0, u64::MAX).unwrap();
    }

    #[test]
    fn a_version_2_database_is_charged_as_it_stands() {
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
        assert_eq!(db.used_bytes("u").unwrap(), kv + file_cost(1000, 1, 50) + space_cost(40));
        let seqs: Vec<u64> = db.changes_after("u", 0, 10).unwrap().changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [2, 3], "the change of k that a later one replaced is gone");
        db.delete_file("s", "f", "u").unwrap();
        assert_eq!(db.used_bytes("u").unwrap(), kv + space_cost(40));
        db.leave_space("s", "u").unwrap();
        assert_eq!(db.used_bytes("u").unwrap(), kv);
    }
}
