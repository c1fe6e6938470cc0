//! Moving up (issue #7): copies an embedded deployment — the SQLite file and the
//! shard directory in its data directory — into PostgreSQL and an S3-compatible
//! bucket, then checks that every record and every shard arrived, so a user who
//! outgrows one machine keeps their data. `accelerator migrate` is the command line.
//!
//! # What it does, in order
//!
//! 1. Opens the source without changing it: the SQLite file read-only (SQLite
//!    reads its write-ahead log too, and may rebuild its `-shm` index, which holds
//!    no data), shards as files, `shards/{ff}/{address}`. It refuses a data
//!    directory an accelerator is running on (one holds `accelerator.lock`,
//!    [`DirLock`]), and holds that lock shared until it is done, so none starts
//!    meanwhile. Accelerators of earlier versions take no lock: stop them first.
//! 2. Opens the target with [`PgRecords::connect`], whose migrations create the
//!    schema, and refuses it unless it holds no Coffer data: it never merges into a
//!    live deployment.
//! 3. Copies every shard the records list into the target store, a few at a time
//!    ([`Options::concurrency`]), checking each against its address first; puts are
//!    create-only and a shard already there with its size is skipped, so a run that
//!    stopped part-way is simply run again.
//! 4. Reads every shard back from the target: present, of its recorded size, and
//!    hashing to its address ([`ShardAddress::of`]).
//! 5. In one PostgreSQL transaction, which first locks every table and checks
//!    again that they are empty: streams each table in with `COPY … (FORMAT
//!    binary)`, batch by batch ([`Options::batch_rows`]), moves each identity
//!    sequence past the copied values, then reads every table back in primary-key
//!    order and compares its row count and SHA-256 with the source's. Only then
//!    does it commit: a failed run leaves the database as empty as it found it.
//!
//! [`verify`] runs the checks of steps 4 and 5 alone, on a target migrated before.
//!
//! # What is copied
//!
//! Every table, column for column: users (with `kv_seq`, `used_bytes`, their
//! published public keys and their recovery codes), sessions, kv values (with whether
//! their names are legacy, from before sealed names), the change log, shards, uploads,
//! spaces (with their key epochs), members (with their roster entries and sealed
//! keys), invites, each epoch's link, files (with their state: drafts and deleted
//! files still being unwound are taken over as they are, for the target's collector
//! to finish), the shards each file references, and the server secret (or, if an
//! older accelerator left it in the file `server-secret`, that one). Sessions are
//! copied so that signed-in devices stay signed in; only token hashes are stored, so
//! nothing secret moves.
//!
//! Login challenges are not copied: each lives a minute and is answered once, and
//! the accelerator is stopped during the move, so any left are expired or belong
//! to a sign-in that will simply ask again.
//!
//! # Orders and cursors
//!
//! SQLite orders sessions, spaces, members and files by `rowid`; PostgreSQL by an
//! identity column `n`. Each copied row's `n` is its rowid, so orders, and list
//! cursors clients hold (`"{ms}.{rowid}"`), carry over unchanged; each identity
//! sequence is then set to the largest copied value, so new rows come after.
//!
//! # Memory
//!
//! Rows travel in batches through a channel of two batches from a blocking reader
//! to the `COPY`; reads back use a portal, a batch at a time; shards are held at
//! most [`Options::concurrency`] at once. Nothing grows with the database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use coffer_core::shard::ShardAddress;
use futures_util::stream::{self, Stream, StreamExt as _};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::backends::DirLock;
use crate::secret::SECRET_FILE;
use crate::store::StoreError;
use crate::store::objects::DIR_NAME;
use crate::store::postgres::PgRecords;
use crate::store::shards::ShardStore;
use crate::store::sqlite;

/// How a migration or a verification goes about its work.
#[derive(Debug, Clone)]
pub struct Options {
    /// Shards copied or read back at once; each is held in memory whole (up to
    /// 16 MiB), so this bounds the memory shards take.
    pub concurrency: usize,
    /// Rows read from SQLite, and back from PostgreSQL, per batch. A batch from
    /// SQLite also ends at [`BATCH_BYTES`]; one read back holds at most this many
    /// rows, each at most a value or a record (about 1 MiB).
    pub batch_rows: usize,
    /// How long the migration waits for a lock on the target's tables (an
    /// accelerator using the target database holds them while it writes) before it
    /// gives up.
    pub lock_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { concurrency: 8, batch_rows: 256, lock_timeout: Duration::from_secs(10) }
    }
}

/// Which pass a [`Progress`] report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Copying into the target.
    Copy,
    /// Reading the target back and comparing.
    Verify,
}

/// What a migration has done so far, reported as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// One more shard copied (or found there) or checked.
    Shard {
        /// Copying or checking.
        phase: Phase,
        /// Shards done so far in this pass.
        done: u64,
        /// Shards the source records.
        total: u64,
    },
    /// A table copied or checked.
    Table {
        /// Copying or checking.
        phase: Phase,
        /// Its name.
        table: &'static str,
        /// Its rows.
        rows: u64,
    },
}

/// Why a migration or a verification stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrateError {
    /// The source cannot be read: no database there, or SQLite or the file system
    /// failed.
    Source(String),
    /// An accelerator is running on the source data directory.
    SourceBusy(PathBuf),
    /// The source database was written by another version of the accelerator.
    SourceSchema {
        /// Its schema version.
        found: i64,
        /// The version this code reads.
        expected: i64,
    },
    /// A shard the source records is missing from its directory, or its bytes
    /// there do not match its record.
    SourceShard {
        /// The shard.
        address: ShardAddress,
        /// What is wrong with it.
        problem: String,
    },
    /// The target database or store failed.
    Target(String),
    /// The target database already holds Coffer data: a migration never merges
    /// into a live deployment.
    TargetNotEmpty {
        /// A table that has rows.
        table: &'static str,
    },
    /// The target does not hold what the source does.
    Mismatch(Vec<Problem>),
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::Source(detail) => write!(f, "source: {detail}"),
            MigrateError::SourceBusy(dir) => {
                write!(f, "an accelerator is running on {}: stop it, then migrate", dir.display())
            }
            MigrateError::SourceSchema { found, expected } => write!(
                f,
                "the source database has schema version {found}, this accelerator reads {expected}: \
                 start and stop this version's accelerator on it once to bring it up to date"
            ),
            MigrateError::SourceShard { address, problem } => write!(f, "source shard {address}: {problem}"),
            MigrateError::Target(detail) => write!(f, "target: {detail}"),
            MigrateError::TargetNotEmpty { table } => write!(
                f,
                "the target database already holds Coffer data (table {table} has rows); \
                 migrate only into a new database"
            ),
            MigrateError::Mismatch(problems) => {
                write!(f, "the target does not match the source ({} problems)", problems.len())?;
                for problem in problems.iter().take(MAX_SHOWN) {
                    write!(f, "\n  {problem}")?;
                }
                if problems.len() > MAX_SHOWN {
                    write!(f, "\n  … and {} more", problems.len() - MAX_SHOWN)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for MigrateError {}

/// Bytes of values after which a batch of rows read from SQLite is sent on, however
/// few rows it has.
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Problems [`MigrateError`]'s message lists; the rest are counted.
const MAX_SHOWN: usize = 20;
/// Problems a verification keeps, so a target missing everything does not fill memory.
const MAX_KEPT: usize = 1000;

/// One way the target differs from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A table has another number of rows.
    Rows {
        /// The table.
        table: &'static str,
        /// Rows in the source.
        source: u64,
        /// Rows in the target.
        target: u64,
    },
    /// A table has the same number of rows, but they differ.
    Checksum {
        /// The table.
        table: &'static str,
    },
    /// A table's identity sequence would hand out a value already used.
    Sequence {
        /// The table.
        table: &'static str,
    },
    /// A shard is not in the target store.
    ShardMissing(ShardAddress),
    /// A shard in the target store has another size than its record.
    ShardSize {
        /// The shard.
        address: ShardAddress,
        /// Its recorded size.
        expected: u64,
        /// Its size in the target.
        found: u64,
    },
    /// A shard's bytes in the target do not hash to its address.
    ShardHash(ShardAddress),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Rows { table, source, target } => {
                write!(f, "{table}: {source} rows in the source, {target} in the target")
            }
            Problem::Checksum { table } => write!(f, "{table}: the rows differ (checksum)"),
            Problem::Sequence { table } => write!(f, "{table}: its identity sequence is behind its rows"),
            Problem::ShardMissing(address) => write!(f, "shard {address}: missing from the target store"),
            Problem::ShardSize { address, expected, found } => {
                write!(f, "shard {address}: {found} bytes in the target, {expected} recorded")
            }
            Problem::ShardHash(address) => write!(f, "shard {address}: its bytes in the target do not hash to it"),
        }
    }
}

/// A table as read from both sides: its rows and their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSum {
    /// The table's name.
    pub table: &'static str,
    /// Its rows.
    pub rows: u64,
    /// SHA-256 of its rows in primary-key order, in the form [`Cell`]s hash in.
    pub sha256: [u8; 32],
}

/// What a verification found equal on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Every copied table, with its rows and checksum.
    pub tables: Vec<TableSum>,
    /// Shards checked.
    pub shards: u64,
    /// Their bytes.
    pub shard_bytes: u64,
}

/// What a migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What was checked equal afterwards.
    pub verified: Verified,
    /// Shards put into the target store.
    pub shards_copied: u64,
    /// Shards found there already (an earlier run's) and left alone.
    pub shards_skipped: u64,
    /// Login challenges left behind (see the module docs).
    pub challenges_skipped: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<14} {:>12}  sha256", "table", "rows")?;
        for t in &self.tables {
            let hex: String = t.sha256.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(f, "{:<14} {:>12}  {}…", t.table, t.rows, &hex[..16])?;
        }
        write!(f, "{:<14} {:>12}  {} bytes", "shards", self.shards, self.shard_bytes)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.verified)?;
        let secs = self.elapsed.as_secs_f64();
        let rows: u64 = self.verified.tables.iter().map(|t| t.rows).sum();
        writeln!(
            f,
            "shards copied {}, already there {}; login challenges not copied {}",
            self.shards_copied, self.shards_skipped, self.challenges_skipped
        )?;
        write!(
            f,
            "{rows} rows and {} shards ({:.1} MiB) copied and verified in {secs:.2} s ({:.0} rows/s, {:.1} MiB/s)",
            self.verified.shards,
            self.verified.shard_bytes as f64 / 1048576.0,
            rows as f64 / secs.max(1e-9),
            self.verified.shard_bytes as f64 / 1048576.0 / secs.max(1e-9)
        )
    }
}

/// How a column is stored: the two schemas agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// TEXT NOT NULL.
    Text,
    /// TEXT, may be NULL.
    OptText,
    /// BLOB / BYTEA NOT NULL.
    Blob,
    /// BLOB / BYTEA, may be NULL.
    OptBlob,
    /// INTEGER / BIGINT; also SQLite's rowid as PostgreSQL's identity `n`.
    Int,
    /// SQLite's INTEGER 0 or 1, PostgreSQL's BOOLEAN.
    Bool,
}

impl Kind {
    /// The PostgreSQL type `COPY` writes.
    fn pg_type(self) -> Type {
        match self {
            Kind::Text | Kind::OptText => Type::TEXT,
            Kind::Blob | Kind::OptBlob => Type::BYTEA,
            Kind::Int => Type::INT8,
            Kind::Bool => Type::BOOL,
        }
    }
}

/// One column: its SQLite expression, its PostgreSQL name, its kind.
type Column = (&'static str, &'static str, Kind);

/// A table copied: the two schemas name it and its columns alike, but for the
/// identity columns (SQLite's `rowid`, PostgreSQL's `n`).
struct Table {
    /// Its name on both sides.
    name: &'static str,
    /// Its columns, in the order they are read, written and hashed.
    columns: &'static [Column],
    /// Its primary key, the order rows are hashed in (byte order of text on both
    /// sides: SQLite's BINARY collation, PostgreSQL's `COLLATE "C"`).
    order: &'static str,
    /// Whether the last column is the identity `n`, whose sequence is moved past it.
    identity: bool,
}

use Kind::*;

/// Every table copied, in an order the foreign keys accept.
const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            ("user_id", "user_id", Text),
            ("username", "username", Text),
            ("salt", "salt", Blob),
            ("kdf_alg", "kdf_alg", Text),
            ("kdf_mem_kib", "kdf_mem_kib", Int),
            ("kdf_iterations", "kdf_iterations", Int),
            ("kdf_parallelism", "kdf_parallelism", Int),
            ("login_public_key", "login_public_key", Blob),
            ("wrapped_root", "wrapped_root", Blob),
            ("kv_seq", "kv_seq", Int),
            ("used_bytes", "used_bytes", Int),
            ("user_public_key", "user_public_key", OptBlob),
            ("recovery_public_key", "recovery_public_key", OptBlob),
            ("recovery_wrapped_root", "recovery_wrapped_root", OptBlob),
        ],
        order: "user_id",
        identity: false,
    },
    Table {
        name: "sessions",
        columns: &[
            ("token_hash", "token_hash", Blob),
            ("user_id", "user_id", Text),
            ("expires_at_ms", "expires_at_ms", Int),
            ("rowid", "n", Int),
        ],
        order: "token_hash",
        identity: true,
    },
    Table {
        name: "kv",
        columns: &[
            ("user_id", "user_id", Text),
            ("collection", "collection", Text),
            ("id", "id", Text),
            ("sealed", "sealed", OptBlob),
            ("plain_json", "plain_json", OptText),
            ("plain_mac", "plain_mac", OptBlob),
            ("legacy_name", "legacy_name", Bool),
        ],
        order: "user_id, collection, id",
        identity: false,
    },
    Table {
        name: "kv_changes",
        columns: &[
            ("user_id", "user_id", Text),
            ("seq", "seq", Int),
            ("collection", "collection", Text),
            ("id", "id", Text),
            ("sealed", "sealed", OptBlob),
            ("plain_json", "plain_json", OptText),
            ("plain_mac", "plain_mac", OptBlob),
        ],
        order: "user_id, seq",
        identity: false,
    },
    Table {
        name: "shards",
        columns: &[("address", "address", Blob), ("size", "size", Int), ("stored_at_ms", "stored_at_ms", Int)],
        order: "address",
        identity: false,
    },
    Table {
        name: "uploads",
        columns: &[
            ("user_id", "user_id", Text),
            ("address", "address", Blob),
            ("size", "size", Int),
            ("expires_at_ms", "expires_at_ms", Int),
        ],
        order: "user_id, address",
        identity: false,
    },
    Table {
        name: "spaces",
        columns: &[
            ("space_id", "space_id", Text),
            ("sealed_name", "sealed_name", Blob),
            ("created_at_ms", "created_at_ms", Int),
            ("created_by", "created_by", Text),
            ("charged_bytes", "charged_bytes", Int),
            ("gone", "gone", Bool),
            ("epoch", "epoch", Int),
            ("rotation_due", "rotation_due", Bool),
            ("rowid", "n", Int),
        ],
        order: "space_id",
        identity: true,
    },
    Table {
        name: "members",
        columns: &[
            ("space_id", "space_id", Text),
            ("user_id", "user_id", Text),
            ("role", "role", Text),
            ("joined_at_ms", "joined_at_ms", Int),
            ("roster_mac", "roster_mac", OptBlob),
            ("sealed_key", "sealed_key", OptBlob),
            ("rowid", "n", Int),
        ],
        order: "space_id, user_id",
        identity: true,
    },
    Table {
        name: "invites",
        columns: &[
            ("space_id", "space_id", Text),
            ("secret_hash", "secret_hash", Blob),
            ("role", "role", Text),
            ("expires_at_ms", "expires_at_ms", Int),
            ("max_uses", "max_uses", Int),
            ("uses", "uses", Int),
            ("created_by", "created_by", Text),
        ],
        order: "space_id, secret_hash",
        identity: false,
    },
    Table {
        name: "epoch_links",
        columns: &[
            ("space_id", "space_id", Text),
            ("epoch", "epoch", Int),
            ("sealed_previous", "sealed_previous", Blob),
            ("made_by", "made_by", Text),
            ("made_at_ms", "made_at_ms", Int),
        ],
        order: "space_id, epoch",
        identity: false,
    },
    Table {
        name: "files",
        columns: &[
            ("space_id", "space_id", Text),
            ("file_id", "file_id", Text),
            ("sealed_record", "sealed_record", Blob),
            ("stored_bytes", "stored_bytes", Int),
            ("created_by", "created_by", Text),
            ("created_at_ms", "created_at_ms", Int),
            ("charged_bytes", "charged_bytes", Int),
            ("state", "state", Text),
            ("shard_count", "shard_count", Int),
            ("expires_at_ms", "expires_at_ms", Int),
            ("epoch", "epoch", Int),
            ("rowid", "n", Int),
        ],
        order: "space_id, file_id",
        identity: true,
    },
    Table {
        name: "file_shards",
        columns: &[("space_id", "space_id", Text), ("file_id", "file_id", Text), ("address", "address", Blob)],
        order: "space_id, file_id, address",
        identity: false,
    },
    Table {
        name: "server_secret",
        columns: &[("only_row", "only_row", Bool), ("secret", "secret", Blob)],
        order: "only_row",
        identity: false,
    },
];

/// The table of shard records, which drives the shard passes.
const SHARDS: &Table = &TABLES[4];
/// The server secret's table, which an earlier version's file may stand in for.
const SECRET_TABLE: &str = "server_secret";

/// One value of a row, as both sides hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// A boolean (SQLite's 0 or 1).
    Bool(bool),
}

impl Cell {
    /// About the bytes it holds.
    fn len(&self) -> usize {
        match self {
            Cell::Text(text) => text.len(),
            Cell::Blob(bytes) => bytes.len(),
            Cell::Null | Cell::Int(_) | Cell::Bool(_) => 8,
        }
    }

    /// Feeds the cell to a hash in a form no two rows share: a tag, then a fixed
    /// width value or a length-prefixed one.
    fn hash_into(&self, hash: &mut Sha256) {
        match self {
            Cell::Null => hash.update([0]),
            Cell::Int(n) => {
                hash.update([1]);
                hash.update(n.to_be_bytes());
            }
            Cell::Text(text) => {
                hash.update([2]);
                hash.update((text.len() as u64).to_be_bytes());
                hash.update(text.as_bytes());
            }
            Cell::Blob(bytes) => {
                hash.update([3]);
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(bytes);
            }
            Cell::Bool(b) => hash.update([4, u8::from(*b)]),
        }
    }
}

impl ToSql for Cell {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(n) => n.to_sql(ty, out),
            Cell::Text(text) => text.to_sql(ty, out),
            Cell::Blob(bytes) => bytes.to_sql(ty, out),
            Cell::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        [Type::TEXT, Type::BYTEA, Type::INT8, Type::BOOL].contains(ty)
    }

    to_sql_checked!();
}

/// A table's rows hashed as they stream by.
struct Digest {
    /// The table.
    table: &'static str,
    /// Rows so far.
    rows: u64,
    /// Their hash so far.
    hash: Sha256,
}

impl Digest {
    fn new(table: &'static str) -> Self {
        Digest { table, rows: 0, hash: Sha256::new() }
    }

    fn add(&mut self, row: &[Cell]) {
        self.rows += 1;
        for cell in row {
            cell.hash_into(&mut self.hash);
        }
    }

    fn finish(self) -> TableSum {
        TableSum { table: self.table, rows: self.rows, sha256: self.hash.finalize().into() }
    }
}

/// Batches of a table's rows, or the error that ended them.
type Batches = mpsc::Receiver<Result<Vec<Vec<Cell>>, MigrateError>>;

/// The embedded deployment being migrated, opened so that nothing in it changes.
struct Source {
    /// `DATA_DIR/accelerator.sqlite3`.
    db: PathBuf,
    /// `DATA_DIR/shards`.
    shards: PathBuf,
    /// The secret an earlier version kept in `DATA_DIR/server-secret`, if any.
    legacy_secret: Option<[u8; 32]>,
    /// Rows per batch.
    batch_rows: usize,
    /// The data directory's lock, held shared so no accelerator starts on it.
    _lock: DirLock,
}

fn source_err(err: impl fmt::Display) -> MigrateError {
    MigrateError::Source(err.to_string())
}

fn target_err(err: impl fmt::Display) -> MigrateError {
    MigrateError::Target(err.to_string())
}

impl From<StoreError> for MigrateError {
    fn from(err: StoreError) -> Self {
        target_err(err)
    }
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => MigrateError::Target(format!("PostgreSQL: {} ({})", db.message(), db.code().code())),
            None => MigrateError::Target(format!("PostgreSQL: {err}")),
        }
    }
}

impl Source {
    /// Opens the deployment in `data_dir`, refusing one an accelerator may be
    /// running on, or one of another schema version.
    fn open(data_dir: &Path, batch_rows: usize) -> Result<Source, MigrateError> {
        let db = data_dir.join(sqlite::FILE_NAME);
        if !db.is_file() {
            return Err(MigrateError::Source(format!("{}: no accelerator database there", db.display())));
        }
        let lock = DirLock::shared(data_dir)
            .map_err(|e| source_err(format!("{}: {e}", data_dir.display())))?
            .ok_or_else(|| MigrateError::SourceBusy(data_dir.to_owned()))?;
        let legacy_secret =
            crate::secret::legacy_secret(&data_dir.join(SECRET_FILE)).map_err(|e| source_err(e.to_string()))?;
        let source =
            Source { db, shards: data_dir.join(DIR_NAME), legacy_secret, batch_rows: batch_rows.max(1), _lock: lock };
        let found: i64 = source.connect()?.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(source_err)?;
        if found != sqlite::SCHEMA_VERSION {
            return Err(MigrateError::SourceSchema { found, expected: sqlite::SCHEMA_VERSION });
        }
        Ok(source)
    }

    /// A read-only connection. Each pass reads in a transaction of its own; nothing
    /// writes meanwhile (the lock keeps accelerators away).
    fn connect(&self) -> Result<Connection, MigrateError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.db, flags)
            .map_err(|e| source_err(format!("{}: {e}", self.db.display())))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(source_err)?;
        Ok(conn)
    }

    /// A query's single integer.
    fn count(&self, sql: &str) -> Result<i64, MigrateError> {
        self.connect()?.query_row(sql, [], |r| r.get(0)).map_err(source_err)
    }

    /// The table's rows in primary-key order, in batches, read on the blocking pool
    /// at most two batches ahead of the reader.
    fn rows(&self, table: &'static Table) -> Batches {
        let (tx, rx) = mpsc::channel(2);
        let conn = self.connect();
        let (batch_rows, legacy) = (self.batch_rows, self.legacy_secret);
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let conn = conn?;
                let columns: Vec<&str> = table.columns.iter().map(|c| c.0).collect();
                let sql = format!("SELECT {} FROM {} ORDER BY {}", columns.join(", "), table.name, table.order);
                let mut statement = conn.prepare(&sql).map_err(source_err)?;
                let mut rows = statement.query([]).map_err(source_err)?;
                let (mut batch, mut bytes, mut any) = (Vec::with_capacity(batch_rows), 0, false);
                while let Some(row) = rows.next().map_err(source_err)? {
                    let mut cells = Vec::with_capacity(table.columns.len());
                    for (at, &(name, _, kind)) in table.columns.iter().enumerate() {
                        let value = row.get_ref(at).map_err(source_err)?;
                        cells.push(sqlite_cell(value, kind).ok_or_else(|| {
                            MigrateError::Source(format!("{}.{name}: a {:?} value", table.name, value.data_type()))
                        })?);
                    }
                    bytes += cells.iter().map(Cell::len).sum::<usize>();
                    batch.push(cells);
                    any = true;
                    if batch.len() >= batch_rows || bytes >= BATCH_BYTES {
                        bytes = 0;
                        if tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err() {
                            return Ok(());
                        }
                    }
                }
                if table.name == SECRET_TABLE
                    && !any
                    && let Some(secret) = legacy
                {
                    batch.push(vec![Cell::Bool(true), Cell::Blob(secret.to_vec())]);
                }
                if !batch.is_empty() {
                    let _ = tx.blocking_send(Ok(batch));
                }
                Ok(())
            })();
            if let Err(err) = result {
                let _ = tx.blocking_send(Err(err));
            }
        });
        rx
    }

    /// The shard records, `(address, size)` one at a time, in address order.
    fn shard_records(&self) -> impl Stream<Item = Result<(ShardAddress, u64), MigrateError>> + use<> {
        rows_of(self.rows(SHARDS)).map(|row| {
            let row = row?;
            match (&row[0], &row[1]) {
                (Cell::Blob(address), Cell::Int(size)) => {
                    let address: [u8; 32] =
                        address.as_slice().try_into().map_err(|_| source_err("a shard address is not 32 bytes"))?;
                    Ok((ShardAddress::from_bytes(address), u64::try_from(*size).unwrap_or(0)))
                }
                _ => Err(source_err("shards: unexpected columns")),
            }
        })
    }

    /// A shard's bytes from the directory, checked against its record.
    async fn shard(&self, address: &ShardAddress, size: u64) -> Result<Bytes, MigrateError> {
        let path = self.shards.join(address.fan_out()).join(address.to_hex());
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MigrateError::SourceShard {
                    address: *address,
                    problem: format!("{} is missing", path.display()),
                });
            }
            Err(e) => return Err(source_err(format!("{}: {e}", path.display()))),
        };
        if bytes.len() as u64 != size {
            let problem = format!("{} bytes in {}, {size} recorded", bytes.len(), path.display());
            return Err(MigrateError::SourceShard { address: *address, problem });
        }
        if !address.matches(&bytes) {
            let problem = format!("the bytes in {} do not hash to it", path.display());
            return Err(MigrateError::SourceShard { address: *address, problem });
        }
        Ok(Bytes::from(bytes))
    }
}

/// A SQLite value as a [`Cell`] of `kind`; `None` if it is not one.
fn sqlite_cell(value: ValueRef<'_>, kind: Kind) -> Option<Cell> {
    Some(match (kind, value) {
        (OptText | OptBlob, ValueRef::Null) => Cell::Null,
        (Text | OptText, ValueRef::Text(text)) => Cell::Text(String::from_utf8(text.to_vec()).ok()?),
        (Blob | OptBlob, ValueRef::Blob(bytes)) => Cell::Blob(bytes.to_vec()),
        (Int, ValueRef::Integer(n)) => Cell::Int(n),
        (Bool, ValueRef::Integer(n @ (0 | 1))) => Cell::Bool(n == 1),
        _ => return None,
    })
}

/// A PostgreSQL row's columns as [`Cell`]s of the table's kinds.
fn pg_cells(row: &tokio_postgres::Row, table: &Table) -> Result<Vec<Cell>, MigrateError> {
    let mut cells = Vec::with_capacity(table.columns.len());
    for (at, &(_, _, kind)) in table.columns.iter().enumerate() {
        cells.push(match kind {
            Text => Cell::Text(row.try_get(at)?),
            OptText => row.try_get::<_, Option<String>>(at)?.map_or(Cell::Null, Cell::Text),
            Blob => Cell::Blob(row.try_get(at)?),
            OptBlob => row.try_get::<_, Option<Vec<u8>>>(at)?.map_or(Cell::Null, Cell::Blob),
            Int => Cell::Int(row.try_get(at)?),
            Bool => Cell::Bool(row.try_get(at)?),
        });
    }
    Ok(cells)
}

/// Batches flattened into rows.
fn rows_of(batches: Batches) -> impl Stream<Item = Result<Vec<Cell>, MigrateError>> {
    stream::unfold((batches, Vec::new().into_iter()), |(mut batches, mut pending)| async move {
        loop {
            if let Some(row) = pending.next() {
                return Some((Ok(row), (batches, pending)));
            }
            match batches.recv().await? {
                Ok(batch) => pending = batch.into_iter(),
                Err(err) => return Some((Err(err), (batches, pending))),
            }
        }
    })
}

/// The columns of `table` on the PostgreSQL side, comma-separated.
fn pg_columns(table: &Table) -> String {
    table.columns.iter().map(|c| c.1).collect::<Vec<_>>().join(", ")
}

/// Copies the embedded deployment in `from_dir` into the PostgreSQL database at
/// `to_database` and the shard store `to_shards`, then verifies both; see the
/// module docs. The accelerator must not be running on `from_dir`, nor on the
/// target. `progress` hears of each shard and table as it is done.
pub async fn migrate(
    from_dir: &Path,
    to_database: &str,
    to_shards: &dyn ShardStore,
    options: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<Report, MigrateError> {
    let started = Instant::now();
    let source = Source::open(from_dir, options.batch_rows)?;
    let records = connect(to_database).await?;
    {
        let mut client = records.client().await.map_err(StoreError::from)?;
        let tx = client.build_transaction().read_only(true).start().await?;
        if let Some(table) = first_nonempty(&tx).await? {
            return Err(MigrateError::TargetNotEmpty { table });
        }
    }
    let total = u64::try_from(source.count("SELECT count(*) FROM shards")?).unwrap_or(0);
    let challenges_skipped = u64::try_from(source.count("SELECT count(*) FROM challenges")?).unwrap_or(0);

    // The shards first: should anything fail before the records commit, the
    // database stays empty and a second run skips the shards already copied.
    let (mut done, mut shards_copied, mut shards_skipped) = (0, 0, 0);
    let mut copies = std::pin::pin!(
        source
            .shard_records()
            .map(|record| {
                let source = &source;
                async move {
                    let (address, size) = record?;
                    if to_shards.size(&address).await.map_err(target_err)? == Some(size) {
                        return Ok(false);
                    }
                    let bytes = source.shard(&address, size).await?;
                    to_shards.put(&address, bytes).await.map_err(|e| target_err(format!("shard {address}: {e}")))?;
                    Ok::<_, MigrateError>(true)
                }
            })
            .buffer_unordered(options.concurrency.max(1))
    );
    while let Some(copied) = copies.next().await {
        if copied? {
            shards_copied += 1;
        } else {
            shards_skipped += 1;
        }
        done += 1;
        progress(Progress::Shard { phase: Phase::Copy, done, total });
    }
    let (shards, shard_bytes) = verify_shards(&source, to_shards, options, total, &mut progress).await?;

    let mut client = records.client().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let all: Vec<&str> = TABLES.iter().map(|t| t.name).chain(["challenges"]).collect();
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{}ms'; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        options.lock_timeout.as_millis(),
        all.join(", ")
    ))
    .await?;
    if let Some(table) = first_nonempty(&tx).await? {
        return Err(MigrateError::TargetNotEmpty { table });
    }
    // A target accelerator started once made a secret of its own; the source's
    // replaces it, so unknown usernames keep answering as they did.
    tx.batch_execute("DELETE FROM server_secret").await?;
    for table in TABLES {
        let rows = copy_table(&tx, &source, table).await?;
        if table.identity {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'n'), max(n)) FROM {0} HAVING count(*) > 0",
                    table.name
                ),
                &[],
            )
            .await?;
        }
        progress(Progress::Table { phase: Phase::Copy, table: table.name, rows });
    }
    let tables = verify_tables(&source, &tx, options, &mut progress).await?;
    tx.commit().await?;
    Ok(Report {
        verified: Verified { tables, shards, shard_bytes },
        shards_copied,
        shards_skipped,
        challenges_skipped,
        elapsed: started.elapsed(),
    })
}

/// Checks a target that [`migrate`] filled from `from_dir` against it: every table's
/// rows and checksum, every identity sequence, and every shard's presence, size and
/// address. Reads only.
pub async fn verify(
    from_dir: &Path,
    to_database: &str,
    to_shards: &dyn ShardStore,
    options: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<Verified, MigrateError> {
    let source = Source::open(from_dir, options.batch_rows)?;
    let records = connect(to_database).await?;
    let total = u64::try_from(source.count("SELECT count(*) FROM shards")?).unwrap_or(0);
    let shards = verify_shards(&source, to_shards, options, total, &mut progress).await;
    let mut client = records.client().await.map_err(StoreError::from)?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let tables = verify_tables(&source, &tx, options, &mut progress).await;
    match (tables, shards) {
        (Ok(tables), Ok((shards, shard_bytes))) => Ok(Verified { tables, shards, shard_bytes }),
        (Err(MigrateError::Mismatch(mut a)), Err(MigrateError::Mismatch(b))) => {
            a.extend(b);
            Err(MigrateError::Mismatch(a))
        }
        (Err(err), _) | (_, Err(err)) => Err(err),
    }
}

/// The target's records, its schema brought up to date by its own migrations.
async fn connect(url: &str) -> Result<PgRecords, MigrateError> {
    PgRecords::connect_with(url, crate::Config::DEFAULT_CHANGE_LOG_RETAIN, 2).await.map_err(target_err)
}

/// The first table (the server secret aside) of the target that has rows.
async fn first_nonempty(tx: &Transaction<'_>) -> Result<Option<&'static str>, MigrateError> {
    for table in TABLES.iter().filter(|t| t.name != SECRET_TABLE) {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
        if tx.query_one(&sql, &[]).await?.try_get::<_, bool>(0)? {
            return Ok(Some(table.name));
        }
    }
    Ok(None)
}

/// Streams one table into the target with a binary `COPY`; returns its rows. `COPY`
/// writes identity columns as given (as `OVERRIDING SYSTEM VALUE` would).
async fn copy_table(tx: &Transaction<'_>, source: &Source, table: &'static Table) -> Result<u64, MigrateError> {
    let sql = format!("COPY {} ({}) FROM STDIN (FORMAT binary)", table.name, pg_columns(table));
    let sink = tx.copy_in::<_, Bytes>(&sql).await?;
    let types: Vec<Type> = table.columns.iter().map(|c| c.2.pg_type()).collect();
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    let mut batches = source.rows(table);
    while let Some(batch) = batches.recv().await {
        for row in batch? {
            let values: Vec<&(dyn ToSql + Sync)> = row.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
            writer.as_mut().write(&values).await?;
        }
    }
    Ok(writer.finish().await?)
}

/// Reads every table from both sides in primary-key order and compares rows and
/// checksums; checks each identity sequence is past its rows.
async fn verify_tables(
    source: &Source,
    tx: &Transaction<'_>,
    options: &Options,
    progress: &mut impl FnMut(Progress),
) -> Result<Vec<TableSum>, MigrateError> {
    let mut sums = Vec::new();
    let mut problems = Vec::new();
    for table in TABLES {
        let mut ours = Digest::new(table.name);
        let mut batches = source.rows(table);
        while let Some(batch) = batches.recv().await {
            batch?.iter().for_each(|row| ours.add(row));
        }
        let ours = ours.finish();

        let mut theirs = Digest::new(table.name);
        let sql = format!("SELECT {} FROM {} ORDER BY {}", pg_columns(table), table.name, table.order);
        let statement = tx.prepare(&sql).await?;
        let portal = tx.bind(&statement, &[]).await?;
        let batch = i32::try_from(options.batch_rows.max(1)).unwrap_or(i32::MAX);
        loop {
            let rows = tx.query_portal(&portal, batch).await?;
            for row in &rows {
                theirs.add(&pg_cells(row, table)?);
            }
            if rows.len() < batch as usize {
                break;
            }
        }
        let theirs = theirs.finish();

        if ours.rows != theirs.rows {
            problems.push(Problem::Rows { table: table.name, source: ours.rows, target: theirs.rows });
        } else if ours.sha256 != theirs.sha256 {
            problems.push(Problem::Checksum { table: table.name });
        }
        if table.identity {
            let sql = format!(
                "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('{0}', 'n')::regclass), 0)
                        >= coalesce(max(n), 0) FROM {0}",
                table.name
            );
            if !tx.query_one(&sql, &[]).await?.try_get::<_, bool>(0)? {
                problems.push(Problem::Sequence { table: table.name });
            }
        }
        progress(Progress::Table { phase: Phase::Verify, table: table.name, rows: theirs.rows });
        sums.push(ours);
    }
    if problems.is_empty() { Ok(sums) } else { Err(MigrateError::Mismatch(problems)) }
}

/// Reads every recorded shard back from the target: present, of its recorded size,
/// hashing to its address. Returns the shards and their bytes.
async fn verify_shards(
    source: &Source,
    target: &dyn ShardStore,
    options: &Options,
    total: u64,
    progress: &mut impl FnMut(Progress),
) -> Result<(u64, u64), MigrateError> {
    let mut checks = std::pin::pin!(
        source
            .shard_records()
            .map(|record| async move {
                let (address, size) = record?;
                let problem = match target.get(&address).await.map_err(target_err)? {
                    None => Some(Problem::ShardMissing(address)),
                    Some(bytes) if bytes.len() as u64 != size => {
                        Some(Problem::ShardSize { address, expected: size, found: bytes.len() as u64 })
                    }
                    Some(bytes) if !address.matches(&bytes) => Some(Problem::ShardHash(address)),
                    Some(_) => None,
                };
                Ok::<_, MigrateError>((size, problem))
            })
            .buffer_unordered(options.concurrency.max(1))
    );
    let (mut done, mut bytes, mut problems) = (0, 0, Vec::new());
    while let Some(checked) = checks.next().await {
        let (size, problem) = checked?;
        done += 1;
        bytes += size;
        if let Some(problem) = problem.filter(|_| problems.len() < MAX_KEPT) {
            problems.push(problem);
        }
        progress(Progress::Shard { phase: Phase::Verify, done, total });
    }
    if problems.is_empty() { Ok((done, bytes)) } else { Err(MigrateError::Mismatch(problems)) }
}
