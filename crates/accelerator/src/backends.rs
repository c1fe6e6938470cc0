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

/// The records, the shards and the server secret, opened.
pub struct Opened {
    /// The records.
    pub records: Arc<dyn Records>,
    /// The shard store.
    pub shards: Arc<dyn ShardStore>,
    /// The secret every accelerator on these records shares.
    pub secret: ServerSecret,
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
    Ok(Opened { records, shards, secret })
}

/// The secret in the legacy file at `path`, if there is one.
pub(crate) fn legacy_secret(path: &Path) -> io::Result<Option<[u8; 32]>> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.try_into().map(Some).map_err(|_| {
            io::Error::other(format!("{} is not 32 bytes; remove it to make a new secret", path.display()))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
