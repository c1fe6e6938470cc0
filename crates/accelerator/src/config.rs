//! What an accelerator is told at start: where its data lives, what it serves, and
//! the few limits an operator may want to change. `main.rs` fills it from flags and
//! environment variables; tests build it directly with short limits.

use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::run`] needs besides a listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding the SQLite database, the server secret and the shards
    /// (`shards/`); created if missing.
    pub data_dir: PathBuf,
    /// The demo app, served at `/` when set.
    pub www_dir: Option<PathBuf>,
    /// The npm package wasm-pack built, served at `/pkg/` when set, so the demo can
    /// import `/pkg/coffer.js` from the same origin.
    pub pkg_dir: Option<PathBuf>,
    /// How many kv change-log entries are kept per user. A feed client further
    /// behind than this is told to resync instead of replayed. At least 1.
    pub change_log_retain: u64,
    /// How long a session token stays valid after sign-in.
    pub session_ttl: Duration,
    /// How long a login challenge may be answered (tests shorten it to zero).
    pub challenge_ttl: Duration,
    /// How long a feed websocket may take to send its `auth` frame.
    pub feed_auth_timeout: Duration,
    /// How often the feed pings an idle websocket, so proxies keep it open and dead
    /// peers are noticed.
    pub feed_ping_interval: Duration,
    /// The largest JSON request body accepted; larger ones get `TooLarge`. Shard
    /// uploads and file commits have their own limits (`MAX_SHARD_BYTES`,
    /// [`crate::files::MAX_COMMIT_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// Mounts the measuring aids of [`crate::bench`] (`scripts/bench` turns this on).
    pub bench_endpoints: bool,
    /// How long an uploaded shard that no committed file references is kept before
    /// the collector removes it: long enough for any upload to reach its commit.
    pub shard_grace: Duration,
    /// How often the collector looks for such shards.
    pub gc_interval: Duration,
    /// Bytes of shards each space's committed files may hold in all.
    pub space_quota_bytes: u64,
}

impl Config {
    /// Default kv change-log entries kept per user.
    pub const DEFAULT_CHANGE_LOG_RETAIN: u64 = 10_000;
    /// Default session lifetime: 30 days.
    pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
    /// Default challenge lifetime: 60 seconds.
    pub const DEFAULT_CHALLENGE_TTL: Duration = Duration::from_secs(60);
    /// Default limit on request bodies: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// Default shard grace period: 24 hours.
    pub const DEFAULT_SHARD_GRACE: Duration = Duration::from_secs(24 * 60 * 60);
    /// Default collector interval: 60 seconds.
    pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(60);
    /// Default space quota: 10 GiB.
    pub const DEFAULT_SPACE_QUOTA_BYTES: u64 = 10 * 1024 * 1024 * 1024;

    /// The defaults, keeping data in `data_dir` and serving no static files.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            www_dir: None,
            pkg_dir: None,
            change_log_retain: Self::DEFAULT_CHANGE_LOG_RETAIN,
            session_ttl: Self::DEFAULT_SESSION_TTL,
            challenge_ttl: Self::DEFAULT_CHALLENGE_TTL,
            feed_auth_timeout: Duration::from_secs(10),
            feed_ping_interval: Duration::from_secs(20),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            bench_endpoints: false,
            shard_grace: Self::DEFAULT_SHARD_GRACE,
            gc_interval: Self::DEFAULT_GC_INTERVAL,
            space_quota_bytes: Self::DEFAULT_SPACE_QUOTA_BYTES,
        }
    }
}
