//! The shared backend: the records in one PostgreSQL database, which any number of
//! accelerators use at once (issue #7: N stateless instances).
//!
//! # Layout
//!
//! - this module: [`PgRecords`] (a pool of connections), connecting, the schema's
//!   migrations, the server secret, and what every domain shares: retries, row
//!   helpers, cursors;
//! - [`accounts`]: users, sessions, challenges, what a user stores;
//! - [`kv`]: values and each user's change log;
//! - [`spaces`]: spaces, members, invites;
//! - [`space_keys`]: key epochs, roster entries, sealed keys, links, rotation;
//! - [`files`]: shards, uploads, commits in steps, deletes and their unwinding.
//!
//! # Writers on several accelerators
//!
//! SQLite has one writer thread, which orders every write. Here each method is one
//! transaction at PostgreSQL's default READ COMMITTED level, and a write first locks
//! the row that orders it, so that what it checks still holds when it commits:
//!
//! - a user's row (`SELECT … FOR UPDATE`) for their kv writes, sessions and uploads,
//!   and before a charge is checked against their allowance: sequence numbers are
//!   handed out one at a time, in commit order, with no gap or repeat, and two
//!   writes never both pass an allowance that has room for one;
//! - a space's row for changes of its membership, its invites, its key epochs and
//!   its files (`FOR UPDATE`; a commit's intermediate steps take `FOR SHARE`, so
//!   steps of different files go side by side while a membership change waits):
//!   role checks, the epoch a write names, the roster a rotation lists and the space
//!   quota hold against writers elsewhere;
//! - a file's row for the steps of its commit and its unwinding, and shard rows
//!   (`FOR KEY SHARE` by a step that references them, `FOR UPDATE` by the collector
//!   before it drops one), so a shard is never dropped under a new reference.
//!
//! Storing and freeing a shard's bytes happen outside any transaction, so the
//! shard keeper orders them by address with a session advisory lock
//! ([`files::PgHold`]), which every accelerator on the database sees.
//!
//! A statement run after a lock is taken sees what the lock's previous holder
//! committed (READ COMMITTED takes a snapshot per statement), so checks follow the
//! lock. Reads of more than one statement run in a REPEATABLE READ snapshot.
//! Transactions that PostgreSQL aborts as a deadlock or serialization failure are
//! run again ([`ATTEMPTS`]).

pub mod accounts;
pub mod files;
pub mod kv;
pub mod listen;
pub mod space_keys;
pub mod spaces;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::{PageRequest, StoreError};
pub(crate) use super::{paged, position};

/// Each migration takes the schema from the version before it to its own; starting
/// applies those a database lacks, in one transaction, and records each in
/// `schema_migrations`. They are the files in `migrations/postgres/`, in order; one
/// is never edited once released: a change is a new file.
const MIGRATIONS: [(i64, &str); 6] = [
    (1, include_str!("../../../migrations/postgres/0001_accounts_and_kv.sql")),
    (2, include_str!("../../../migrations/postgres/0002_spaces_and_files.sql")),
    (3, include_str!("../../../migrations/postgres/0003_server_secret.sql")),
    (4, include_str!("../../../migrations/postgres/0004_key_epochs.sql")),
    (5, include_str!("../../../migrations/postgres/0005_recovery.sql")),
    (6, include_str!("../../../migrations/postgres/0006_kv_names.sql")),
];

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock that accelerators starting at once take turns at while they
/// migrate (an arbitrary number: "coffer" in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_6666_6572;

/// Times a transaction is tried when PostgreSQL aborts it as a deadlock or a
/// serialization failure.
pub const ATTEMPTS: u32 = 5;

/// Connections a [`PgRecords`] keeps open at most, unless
/// [`PgRecords::connect_with`] says otherwise.
pub const POOL_SIZE: usize = 16;

/// Connections kept at most for shard holds ([`super::Files::hold_shards`]) for each
/// [`POOL_SIZE`] of the main pool (half as many, at least one): a hold keeps its
/// connection while the shard's bytes are written or deleted.
pub const HOLD_POOL_SHARE: usize = 2;

/// Shards one transaction adds or drops at most, unless [`PgRecords::with_step`] says
/// otherwise (as [`crate::store::sqlite::STEP`]).
pub const STEP: usize = 1024;

/// The records in a PostgreSQL database, shared by every accelerator using it.
pub struct PgRecords {
    /// Open connections, one taken per transaction.
    pool: Pool,
    /// Connections that hold shard addresses ([`files::PgHold`]), one per hold, apart
    /// from `pool`: holders wait for the transactions they run under a hold, never
    /// the other way round, so they cannot take every connection those need.
    holds: Pool,
    /// Change-log entries kept per user; older ones are pruned on write.
    retain: u64,
    /// Shards one transaction adds or drops at most ([`PgRecords::step`]).
    step: usize,
}

/// Why one try at a transaction failed: a refusal to answer with, or a database
/// failure that may be worth another try.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The store refuses (or has failed for good): the answer.
    Store(StoreError),
    /// PostgreSQL failed; [`retryable`] tells whether to try again.
    Db(tokio_postgres::Error),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        Failure::Db(err)
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Failure::Store(StoreError::Backend(format!("no database connection: {err}")))
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Store(err) => err,
            Failure::Db(err) => backend(&err),
        }
    }
}

/// A database failure as the store reports it (for the log).
fn backend(err: &tokio_postgres::Error) -> StoreError {
    match err.as_db_error() {
        Some(db) => StoreError::Backend(format!("{} ({})", db.message(), db.code().code())),
        None => StoreError::Backend(err.to_string()),
    }
}

/// Whether PostgreSQL aborted the transaction only because of another one running
/// beside it: trying again is then the remedy.
fn retryable(failure: &Failure) -> bool {
    let Failure::Db(err) = failure else { return false };
    let code = err.code();
    code == Some(&SqlState::T_R_SERIALIZATION_FAILURE) || code == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// Whether the failure is a unique constraint refusing a second row of one key.
pub(crate) fn unique_violation(failure: &Failure) -> bool {
    matches!(failure, Failure::Db(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION))
}

/// Runs `attempt` until it succeeds, is refused, or fails in a way another try
/// would not mend, at most [`ATTEMPTS`] times. Each try is a transaction of its own,
/// rolled back when it fails, so a retried one starts from scratch.
async fn retry<T, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Ok(answer) => return Ok(answer),
            Err(failure) if retryable(&failure) && tries < ATTEMPTS => {
                // The other transaction usually finishes in a few milliseconds.
                tokio::time::sleep(Duration::from_millis(u64::from(tries) * 5)).await;
                tries += 1;
            }
            Err(failure) => return Err(failure.into()),
        }
    }
}

/// Parameters of a statement.
pub(crate) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs a statement (prepared once per connection); returns the rows it changed.
pub(crate) async fn exec(c: &impl GenericClient, sql: &str, params: &Params<'_>) -> Result<u64, Failure> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.execute(&statement, params).await?)
}

/// Runs a query (prepared once per connection); returns its rows.
pub(crate) async fn rows(c: &impl GenericClient, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, Failure> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query(&statement, params).await?)
}

/// Runs a query that returns at most one row.
pub(crate) async fn row(c: &impl GenericClient, sql: &str, params: &Params<'_>) -> Result<Option<Row>, Failure> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&statement, params).await?)
}

/// Runs a query that returns exactly one row.
pub(crate) async fn one(c: &impl GenericClient, sql: &str, params: &Params<'_>) -> Result<Row, Failure> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query_one(&statement, params).await?)
}

/// Column `at` as 32 bytes.
pub(crate) fn bytes32(row: &Row, at: usize) -> Result<[u8; 32], Failure> {
    let bytes: Vec<u8> = row.try_get(at)?;
    bytes.try_into().map_err(|_| Failure::Store(StoreError::Backend(format!("column {at} is not 32 bytes"))))
}

/// PostgreSQL integers are signed; every number stored here is far below `i64::MAX`.
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count or size as the store answers it (never negative).
pub(crate) fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Column `at`, a key epoch (stored as BIGINT, never past `MAX_EPOCH`).
pub(crate) fn epoch_at(row: &Row, at: usize) -> Result<u32, Failure> {
    let n: i64 = row.try_get(at)?;
    u32::try_from(n).map_err(|_| Failure::Store(StoreError::Backend(format!("epoch {n} out of range"))))
}

/// The cursor of a row in a list ordered by (time, n), read from its columns
/// `ms_at` and `n_at`: `"{ms}.{n}"`, the form SQLite's cursors have.
pub(crate) fn cursor_at(row: &Row, ms_at: usize, n_at: usize) -> Result<String, Failure> {
    Ok(format!("{}.{}", row.try_get::<_, i64>(ms_at)?, row.try_get::<_, i64>(n_at)?))
}

/// Rows wanted for a page: one more than it holds, to know whether another follows.
pub(crate) fn page_rows(page: &PageRequest) -> i64 {
    int(page.limit as u64).saturating_add(1)
}

impl PgRecords {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, no TLS)
    /// and brings its schema up to date, keeping `retain` change-log entries per user.
    pub async fn connect(url: &str, retain: u64) -> Result<Self, StoreError> {
        Self::connect_with(url, retain, POOL_SIZE).await
    }

    /// [`PgRecords::connect`] with at most `pool_size` connections open for
    /// transactions, and half as many ([`HOLD_POOL_SHARE`]) for shard holds.
    pub async fn connect_with(url: &str, retain: u64, pool_size: usize) -> Result<Self, StoreError> {
        let config = url.parse().map_err(|e| StoreError::Backend(format!("bad PostgreSQL URL: {e}")))?;
        Self::connect_config(config, retain, pool_size).await
    }

    /// [`PgRecords::connect_with`] from a parsed configuration.
    pub async fn connect_config(
        config: tokio_postgres::Config,
        retain: u64,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        // Fast recycling leaves a connection's session as it is: a hold's connection
        // gives its locks back itself before it returns to its pool.
        let pool_of = |size: usize| {
            let manager =
                Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
            Pool::builder(manager)
                .max_size(size.max(1))
                .build()
                .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))
        };
        let pool = pool_of(pool_size)?;
        let holds = pool_of(pool_size / HOLD_POOL_SHARE)?;
        let records = PgRecords { pool, holds, retain: retain.max(1), step: STEP };
        records.migrate().await?;
        Ok(records)
    }

    /// Makes [`super::Files::step`] `step` shards (at least one), so a test can watch
    /// other writes come between the steps of a small commit.
    pub fn with_step(mut self, step: usize) -> Self {
        self.step = step.max(1);
        self
    }

    /// Applies the migrations the database lacks, in one transaction, holding
    /// [`MIGRATION_LOCK`] so that accelerators starting at once migrate one after
    /// the other (the later ones find nothing left to do). Refuses a database whose
    /// schema is newer than this code, or not in UTF-8.
    async fn migrate(&self) -> Result<(), StoreError> {
        let latest = MIGRATIONS.len() as i64;
        retry(|| async move {
            let mut client = self.pool.get().await?;
            let encoding: String = one(&client, "SHOW server_encoding", &[]).await?.try_get(0)?;
            if encoding != "UTF8" {
                return Err(StoreError::Backend(format!("the database is in {encoding}; Coffer needs UTF8")).into());
            }
            let tx = client.transaction().await?;
            exec(&tx, "SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    BIGINT PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )
            .await?;
            let version: i64 =
                one(&tx, "SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await?.try_get(0)?;
            if version > latest {
                return Err(StoreError::Backend(format!(
                    "database schema version {version} is newer than this accelerator ({latest}); upgrade it"
                ))
                .into());
            }
            for (step, sql) in MIGRATIONS.iter().filter(|(step, _)| *step > version) {
                tx.batch_execute(sql).await?;
                exec(&tx, "INSERT INTO schema_migrations (version) VALUES ($1)", &[step]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// A connection of the pool; its transactions run at READ COMMITTED, and each
    /// locks what it needs.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, Failure> {
        Ok(self.pool.get().await?)
    }
}

/// Starts a read-only REPEATABLE READ transaction: its statements all read one
/// snapshot, as a SQLite read transaction does.
pub(crate) async fn snapshot(client: &mut deadpool_postgres::Object) -> Result<Transaction<'_>, Failure> {
    Ok(client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?)
}
