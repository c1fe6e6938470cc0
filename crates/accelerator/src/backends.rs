//! Opens the records and the shard store a [`Config`] names: SQLite and a directory
//! in the data directory by default; PostgreSQL (`postgres://…`) and an S3 bucket
//! (`s3://…`) for several accelerators side by side, which then keep nothing on
//! their own disk.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::secret::{SECRET_FILE, ServerSecret};
use crate::store::objects::ObjectShards;
use crate::store::postgres::PgRecords;
use crate::store::shards::ShardStore;
use crate::store::sqlite::{self, SqliteRecords};
use crate::store::{self, Records};

/// Where the records are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

impl Database {
    /// The records `config` names.
    pub fn of(config: &Config) -> Database {
        match config.database.as_deref() {
            None => Database::Sqlite(config.data_dir.join(sqlite::FILE_NAME)),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url.to_owned())
            }
            Some(path) => Database::Sqlite(PathBuf::from(path.strip_prefix("sqlite://").unwrap_or(path))),
        }
    }
}

/// The lock file an embedded accelerator holds in its data directory while it runs.
pub const LOCK_FILE: &str = "accelerator.lock";

/// An advisory lock (`flock`) on `DATA_DIR/accelerator.lock`: an embedded
/// accelerator holds it exclusively while it runs, so a second accelerator on the
/// same directory refuses to start, and `accelerator migrate` holds it shared while
/// it reads, so neither starts under the other. The lock goes with the process,
/// however it ends; the file stays. Accelerators of earlier versions take none.
#[derive(Debug)]
pub struct DirLock {
    /// The open lock file, if there is one; closing it releases the lock.
    _file: Option<std::fs::File>,
}

impl DirLock {
    /// Takes the lock exclusively, creating the file; fails at once if another
    /// process holds it.
    pub fn exclusive(data_dir: &Path) -> io::Result<DirLock> {
        let path = data_dir.join(LOCK_FILE);
        let file = store::private_file_options().truncate(false).open(&path)?;
        if !lock(&file, true)? {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another accelerator (or a migration): stop it first", data_dir.display()),
            ));
        }
        Ok(DirLock { _file: Some(file) })
    }

    /// Takes the lock shared, opening the file read-only (and creating nothing):
    /// `Ok(None)` if an accelerator holds it, and `Ok(Some(_))` (holding nothing if
    /// no accelerator of this version ever ran there) otherwise.
    pub fn shared(data_dir: &Path) -> io::Result<Option<DirLock>> {
        let file = match std::fs::File::open(data_dir.join(LOCK_FILE)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Some(DirLock { _file: None }));
            }
            Err(e) => return Err(e),
        };
        Ok(lock(&file, false)?.then_some(DirLock { _file: Some(file) }))
    }
}

/// Tries to `flock` the file; `false` if another open file holds a conflicting lock.
#[cfg(unix)]
fn lock(file: &std::fs::File, exclusive: bool) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    let operation =
        if exclusive { FlockOperation::NonBlockingLockExclusive } else { FlockOperation::NonBlockingLockShared };
    match flock(file, operation) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Elsewhere no lock is taken: running two is the operator's to avoid.
#[cfg(not(unix))]
fn lock(_file: &std::fs::File, _exclusive: bool) -> io::Result<bool> {
    Ok(true)
}

/// The records, the shards and the server secret, opened.
pub struct Opened {
    /// Where the records are.
    pub database: Database,
    /// The records.
    pub records: Arc<dyn Records>,
    /// The shard store.
    pub shards: Arc<dyn ShardStore>,
    /// The secret every accelerator on these records shares.
    pub secret: ServerSecret,
    /// The data directory's lock, held while the records are SQLite's.
    pub lock: Option<DirLock>,
}

/// Opens what `config` names, creating the data directory only if something is
/// kept there.
pub async fn open(config: &Config) -> io::Result<Opened> {
    let database = Database::of(config);
    let shards_url = config.shards.clone();
    let local = matches!(database, Database::Sqlite(_)) || shards_url.is_none();
    if local {
        store::private_dir(&config.data_dir)?;
    }
    let lock = match &database {
        Database::Sqlite(_) => Some(DirLock::exclusive(&config.data_dir)?),
        Database::Postgres(_) => None,
    };
    let records: Arc<dyn Records> = match &database {
        Database::Sqlite(path) => Arc::new(
            SqliteRecords::open_file(path, config.change_log_retain)
                .map_err(io::Error::other)?
                .with_step(config.shards_per_step),
        ),
        Database::Postgres(url) => Arc::new(
            PgRecords::connect(url, config.change_log_retain)
                .await
                .map_err(|e| io::Error::other(format!("PostgreSQL: {e}")))?
                .with_step(config.shards_per_step),
        ),
    };
    let shards: Arc<dyn ShardStore> = Arc::new(match &shards_url {
        None => ObjectShards::embedded(&config.data_dir)?,
        Some(url) => ObjectShards::from_url_with(url, config.shard_options.iter().map(|(k, v)| (k, v.clone())))?,
    });
    // An embedded accelerator of an earlier version kept its secret in a file:
    // offering it keeps unknown usernames' made-up salts as they were.
    let legacy = match &database {
        Database::Sqlite(_) => Some(config.data_dir.join(SECRET_FILE)),
        Database::Postgres(_) => None,
    };
    let secret = ServerSecret::load(&*records, legacy.as_deref()).await?;
    Ok(Opened { database, records, shards, secret, lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn one_accelerator_per_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DirLock::shared(dir.path()).unwrap().is_some(), "no lock file: nobody ran there");
        let running = DirLock::exclusive(dir.path()).unwrap();
        let second = DirLock::exclusive(dir.path()).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        assert!(DirLock::shared(dir.path()).unwrap().is_none(), "a migration sees it running");
        drop(running);
        let reading = DirLock::shared(dir.path()).unwrap().expect("stopped");
        assert!(DirLock::exclusive(dir.path()).is_err(), "none starts under a migration");
        drop(reading);
        DirLock::exclusive(dir.path()).unwrap();
    }
}
