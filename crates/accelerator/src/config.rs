//! What an accelerator is told at start: where its data lives, what it serves, and
//! the few limits an operator may want to change. `main.rs` fills it from flags and
//! environment variables; tests build it directly with short limits.

use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::run`] needs besides a listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding the SQLite database and the server secret; created if missing.
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
    /// The largest request body accepted; larger ones get `TooLarge`.
    pub max_body_bytes: usize,
    /// Mounts the measuring aids of [`crate::bench`] (`scripts/bench` turns this on).
    pub bench_endpoints: bool,
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
        }
    }
}
