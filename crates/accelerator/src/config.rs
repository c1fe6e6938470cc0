//! What an accelerator is told at start: where its data lives, what it serves, and
//! the few limits an operator may want to change. `main.rs` fills it from flags and
//! environment variables; tests build it directly with short limits.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::run`] needs besides a listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding the SQLite database and the shards (`shards/`) when
    /// [`Config::database`] and [`Config::shards`] do not say otherwise; created if
    /// either is kept there, untouched otherwise.
    pub data_dir: PathBuf,
    /// Where the records are: `None` for SQLite in [`Config::data_dir`]; a
    /// `postgres://…` URL; or a SQLite file's path.
    pub database: Option<String>,
    /// Where the shards are: `None` for `DATA_DIR/shards`; `s3://bucket[/prefix]`
    /// (configured by the standard `AWS_*` variables); or a directory.
    pub shards: Option<String>,
    /// S3 settings applied over the `AWS_*` variables when [`Config::shards`] is a
    /// bucket: `object_store`'s keys (`aws_endpoint_url`, `aws_allow_http`, …), so
    /// a process can point accelerators at different S3 servers without touching
    /// its environment (tests do). Empty for a directory.
    pub shard_options: Vec<(String, String)>,
    /// The demo app, served at `/` when set.
    pub www_dir: Option<PathBuf>,
    /// The npm package wasm-pack built, served at `/pkg/` when set, so the demo can
    /// import `/pkg/coffer.js` from the same origin.
    pub pkg_dir: Option<PathBuf>,
    /// How many kv change-log entries are kept per user. A feed client further
    /// behind than this is told to resync instead of replayed. At least 1.
    pub change_log_retain: u64,
    /// The most shards one database transaction adds or drops: a commit, a delete
    /// or a space's end of more takes several, and other writes come between them
    /// ([`crate::store::Files::step`]). Tests make it small.
    pub shards_per_step: usize,
    /// How long a session token stays valid after sign-in.
    pub session_ttl: Duration,
    /// How long a login challenge may be answered (tests shorten it to zero).
    pub challenge_ttl: Duration,
    /// How long a feed websocket may take to send its `auth` frame.
    pub feed_auth_timeout: Duration,
    /// How often the feed pings an idle websocket, so proxies keep it open and dead
    /// peers are noticed.
    pub feed_ping_interval: Duration,
    /// With several accelerators (PostgreSQL), how often every open feed reads its
    /// log even if no notification came ([`crate::fanout`]): the longest a lost
    /// notification delays an event.
    pub feed_catch_up: Duration,
    /// The largest JSON request body accepted; larger ones get `TooLarge`. Shard
    /// uploads, file commits, key rotations and kv renames have their own limits
    /// (`MAX_SHARD_BYTES`, [`crate::routes::files::MAX_COMMIT_BODY_BYTES`],
    /// [`crate::routes::space_keys::MAX_ROTATE_BODY_BYTES`],
    /// [`crate::routes::kv::MAX_RENAME_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// Mounts the measuring aids of [`crate::routes::bench`] (`scripts/bench` turns this on).
    pub bench_endpoints: bool,
    /// How long an uploaded shard that no committed file references is kept before
    /// the collector removes it: long enough for any upload to reach its commit.
    pub shard_grace: Duration,
    /// How often the collector looks for such shards.
    pub gc_interval: Duration,
    /// Bytes of shards each space's committed files may hold in all.
    pub space_quota_bytes: u64,
    /// Bytes each user may store in all: kv values, uploads not yet committed, the
    /// files they committed (shards, record, references) and the spaces they made.
    pub user_allowance_bytes: u64,
    /// What one client, or all of them together, may hold: connections, sockets,
    /// requests in flight, and how fast they may sign in.
    pub limits: Limits,
    /// The origins this accelerator answers at, as clients reach it
    /// (`https://coffer.example`): login signatures must name one of them (SPEC.md
    /// §3.3). Empty: its loopback addresses on the port it listens on.
    pub public_origins: Vec<String>,
}

/// The origins a listener on `address` answers at by default: its loopback names.
pub fn default_origins(address: std::net::SocketAddr) -> Vec<String> {
    let port = match address.port() {
        80 => String::new(),
        port => format!(":{port}"),
    };
    let hosts: &[&str] = match address.ip() {
        std::net::IpAddr::V6(ip) if !ip.is_unspecified() => &["[::1]", "localhost"],
        _ => &["127.0.0.1", "localhost", "[::1]"],
    };
    hosts.iter().map(|host| format!("http://{host}{port}")).collect()
}

/// The limits that keep the accelerator serving when strangers on the open internet
/// misbehave. The defaults suit one small machine; the README lists them with the
/// flags that change them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections in all (HTTP and websockets). A connection beyond it is
    /// answered `RateLimited` and closed. Lowered at start to fit the process's
    /// descriptor limit.
    pub max_connections: usize,
    /// Open connections from one client address. Trusted proxies are exempt.
    pub max_connections_per_address: usize,
    /// Proxies (haproxy, a load balancer) whose `X-Forwarded-For` is believed: a
    /// request through one counts, for the sign-in rate limits, against the client
    /// the proxy names, and the proxy's own connections are not capped per address.
    /// Empty (the default): the header is ignored, and every address is a client's.
    pub trusted_proxies: Vec<IpAddr>,
    /// How long a client may take to send a request's headers, counted from the
    /// moment the connection is idle (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// How long one request may take from its headers to its answer, body upload
    /// included (a websocket's life is not counted: it ends at the upgrade).
    pub request_timeout: Duration,
    /// How long a write to a client may stay blocked because the client reads
    /// nothing: a download nobody reads is closed after this, and frees its buffers.
    pub write_stall_timeout: Duration,
    /// Feed websockets that have not yet authenticated, in all.
    pub max_unauthenticated_sockets: usize,
    /// Open feed websockets per user.
    pub max_feeds_per_user: usize,
    /// Bytes held in memory by request bodies being read, in all; a body waits for
    /// room up to `request_timeout` ([`crate::budget`]).
    pub body_buffer_bytes: u64,
    /// Shard uploads in flight per user.
    pub max_uploads_per_user: usize,
    /// Shard reads from the store at any one moment (each reads one 64 KiB piece).
    pub max_concurrent_shard_reads: usize,
    /// Bytes one `POST /v1/shards/fetch` may answer.
    pub max_fetch_bytes: u64,
    /// Sign-in requests (salt, sign-up, challenge, login, password change) per
    /// client address: a burst of this many…
    pub auth_burst_per_address: u32,
    /// …refilled at this many per second.
    pub auth_per_second_per_address: f64,
    /// Sign-ups per client address: a burst of this many…
    pub signup_burst_per_address: u32,
    /// …refilled at this many per second.
    pub signups_per_second_per_address: f64,
    /// Challenges and logins per username: a burst of this many…
    pub auth_burst_per_username: u32,
    /// …refilled at this many per second.
    pub auth_per_second_per_username: f64,
    /// Failed logins per username that cost nothing; each one after doubles the
    /// wait before the next attempt…
    pub free_login_failures: u32,
    /// …starting from this wait…
    pub login_backoff_base: Duration,
    /// …and never longer than this, so the owner is never locked out for long.
    pub login_backoff_max: Duration,
    /// Live sessions per user; signing in once more revokes the oldest.
    pub max_sessions_per_user: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16_384,
            max_connections_per_address: 512,
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            write_stall_timeout: Duration::from_secs(30),
            max_unauthenticated_sockets: 1024,
            max_feeds_per_user: 32,
            body_buffer_bytes: 256 * 1024 * 1024,
            max_uploads_per_user: 16,
            max_concurrent_shard_reads: 64,
            max_fetch_bytes: 96 * 1024 * 1024,
            auth_burst_per_address: 120,
            auth_per_second_per_address: 10.0,
            signup_burst_per_address: 30,
            signups_per_second_per_address: 0.5,
            auth_burst_per_username: 30,
            auth_per_second_per_username: 1.0,
            free_login_failures: 5,
            login_backoff_base: Duration::from_secs(1),
            login_backoff_max: Duration::from_secs(60),
            max_sessions_per_user: 100,
        }
    }
}

impl Config {
    /// The quotas a commit is checked against.
    pub fn quotas(&self) -> crate::store::Quotas {
        crate::store::Quotas { space_bytes: self.space_quota_bytes, user_bytes: self.user_allowance_bytes }
    }

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
    /// Default user allowance: 20 GiB.
    pub const DEFAULT_USER_ALLOWANCE_BYTES: u64 = 20 * 1024 * 1024 * 1024;

    /// The defaults, keeping data in `data_dir` and serving no static files.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            database: None,
            shards: None,
            shard_options: Vec::new(),
            www_dir: None,
            pkg_dir: None,
            change_log_retain: Self::DEFAULT_CHANGE_LOG_RETAIN,
            shards_per_step: crate::store::sqlite::STEP,
            session_ttl: Self::DEFAULT_SESSION_TTL,
            challenge_ttl: Self::DEFAULT_CHALLENGE_TTL,
            feed_auth_timeout: Duration::from_secs(10),
            feed_ping_interval: Duration::from_secs(20),
            feed_catch_up: Duration::from_secs(10),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            bench_endpoints: false,
            shard_grace: Self::DEFAULT_SHARD_GRACE,
            gc_interval: Self::DEFAULT_GC_INTERVAL,
            space_quota_bytes: Self::DEFAULT_SPACE_QUOTA_BYTES,
            user_allowance_bytes: Self::DEFAULT_USER_ALLOWANCE_BYTES,
            limits: Limits::default(),
            public_origins: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_origins_are_the_loopback_names() {
        let defaults = default_origins("127.0.0.1:8080".parse().unwrap());
        assert!(defaults.contains(&"http://127.0.0.1:8080".to_owned()));
        assert!(defaults.contains(&"http://localhost:8080".to_owned()));
        assert_eq!(default_origins("127.0.0.1:80".parse().unwrap())[0], "http://127.0.0.1");
    }
}
