//! `accelerator`: runs Coffer's server from the command line.
//!
//! ```text
//! accelerator --port 8080 --data-dir ./data --www-dir www --pkg-dir pkg
//! accelerator migrate --from-data-dir ./data --to-database postgres://… --to-shards s3://bucket/prefix
//! ```
//!
//! With no subcommand it serves; every flag also reads an environment variable
//! (`PORT`, `DATA_DIR`, …). Stops cleanly on Ctrl-C and SIGTERM. `migrate` moves an
//! embedded deployment to PostgreSQL and S3 ([`coffer_accelerator::migrate`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use coffer_accelerator::Config;
use coffer_accelerator::config::Limits;
use coffer_accelerator::migrate::{self, Phase, Progress};
use coffer_accelerator::store::objects::ObjectShards;

/// Coffer's accelerator: sign-in, the kv store and its change feed, shards, spaces
/// and files. With no subcommand, it serves.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Something other than serving.
    #[command(subcommand)]
    command: Option<Command>,
    /// Serving (the default).
    #[command(flatten)]
    serve: Args,
}

/// What the accelerator can do besides serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    Migrate(MigrateArgs),
}

/// Copy an embedded deployment (SQLite + shard directory) into PostgreSQL + S3, then
/// verify every record and shard.
///
/// STOP THE ACCELERATOR FIRST, and start none on the target until this is done. The
/// source is only read, never changed. An accelerator of this version running on the
/// data directory is noticed (it holds DATA_DIR/accelerator.lock) and the migration
/// refused; while the migration runs, none can start there. Earlier versions take no
/// lock: make sure they are stopped.
///
/// The target database must hold no Coffer data (a new database, or one whose
/// schema an accelerator created but which has no users): a migration never merges.
/// Its schema is created by the accelerator's own migrations. All records are copied
/// in one transaction, checked (row counts and SHA-256 per table) before it commits:
/// a failed run leaves the database empty. Shards are copied first, create-only; a
/// second run skips those already there. Login challenges are not copied (each lives
/// a minute). The S3 bucket must exist; it is configured by AWS_ENDPOINT_URL,
/// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP.
///
/// Afterwards, start the accelerators with --database and --shards set to the same
/// target; the old data directory is left as it was, as a backup.
#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// The embedded deployment's data directory (accelerator.sqlite3 and shards/).
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    from_data_dir: PathBuf,
    /// The target database: postgres://user@host:port/db.
    #[arg(long, env = "COFFER_DATABASE")]
    to_database: String,
    /// The target shard store: s3://bucket[/prefix] (or a directory).
    #[arg(long, env = "COFFER_SHARDS")]
    to_shards: String,
    /// Only compare the target with the source (after an earlier migration); write nothing.
    #[arg(long)]
    verify_only: bool,
    /// Shards copied or checked at once (each held in memory whole, up to 16 MiB).
    #[arg(long, default_value_t = migrate::Options::default().concurrency as u64,
          value_parser = clap::value_parser!(u64).range(1..1025))]
    concurrency: u64,
}

/// Serving: every flag also reads an environment variable.
#[derive(Debug, clap::Args)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Directory for the SQLite database and the shards, unless --database and
    /// --shards put them elsewhere.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// The records: `postgres://user@host/db` (several accelerators share it), or
    /// a SQLite file (default: DATA_DIR/accelerator.sqlite3).
    #[arg(long, env = "COFFER_DATABASE")]
    database: Option<String>,
    /// The shards: `s3://bucket[/prefix]` (configured by AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP), or a
    /// directory (default: DATA_DIR/shards).
    #[arg(long, env = "COFFER_SHARDS")]
    shards: Option<String>,
    /// Directory served at `/` (the demo app).
    #[arg(long, env = "WWW_DIR")]
    www_dir: Option<PathBuf>,
    /// Directory served at `/pkg/` (the npm package wasm-pack built).
    #[arg(long, env = "PKG_DIR")]
    pkg_dir: Option<PathBuf>,
    /// kv change-log entries kept per user; feeds further behind must resync.
    #[arg(long, env = "CHANGE_LOG_RETAIN", default_value_t = Config::DEFAULT_CHANGE_LOG_RETAIN,
          value_parser = clap::value_parser!(u64).range(1..))]
    change_log_retain: u64,
    /// With several accelerators on PostgreSQL: how often, in seconds, every open
    /// feed reads its log even if no notification came (the longest a lost one
    /// delays an event).
    #[arg(long, env = "FEED_CATCH_UP_SECS", default_value_t = Config::new("").feed_catch_up.as_secs())]
    feed_catch_up_secs: u64,
    /// How long a session lasts, in seconds.
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = Config::DEFAULT_SESSION_TTL.as_secs())]
    session_ttl_secs: u64,
    /// Mount measuring aids (a websocket echo at /v1/bench/echo) for scripts/bench.
    #[arg(long)]
    bench_endpoints: bool,
    /// Seconds an uploaded shard no committed file references is kept before it is collected.
    #[arg(long, env = "SHARD_GRACE_SECS", default_value_t = Config::DEFAULT_SHARD_GRACE.as_secs())]
    shard_grace_secs: u64,
    /// Seconds between two runs of the shard collector.
    #[arg(long, env = "GC_INTERVAL_SECS", default_value_t = Config::DEFAULT_GC_INTERVAL.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    gc_interval_secs: u64,
    /// Bytes of shards each space's files may hold in all.
    #[arg(long, env = "SPACE_QUOTA_BYTES", default_value_t = Config::DEFAULT_SPACE_QUOTA_BYTES)]
    space_quota_bytes: u64,
    /// Bytes each user may store in all (kv, uploads, files they committed, spaces they made).
    #[arg(long, env = "USER_ALLOWANCE_BYTES", default_value_t = Config::DEFAULT_USER_ALLOWANCE_BYTES)]
    user_allowance_bytes: u64,
    /// An origin this accelerator answers at as clients reach it
    /// (`https://coffer.example`; repeat, or separate by commas). Login signatures
    /// must name one. Default: its loopback addresses on its port.
    #[arg(long = "public-origin", env = "PUBLIC_ORIGIN", value_delimiter = ',',
          value_parser = parse_origin)]
    public_origins: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

fn parse_origin(text: &str) -> Result<String, String> {
    coffer_core::account::canonical_origin(text)
        .ok_or_else(|| format!("{text:?} is not an origin such as https://coffer.example (no path)"))
}

/// What strangers may hold and how fast they may sign in (README, "Limits").
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits on clients")]
struct LimitArgs {
    /// Open connections in all (lowered to fit the open-file limit).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Open connections from one client address.
    #[arg(long, env = "MAX_CONNECTIONS_PER_ADDRESS", default_value_t = Limits::default().max_connections_per_address)]
    max_connections_per_address: usize,
    /// A proxy whose X-Forwarded-For is believed (repeat it, or comma-separate them).
    #[arg(long = "trusted-proxy", env = "TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds a client may take to send a request's headers (also the keep-alive idle timeout).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = Limits::default().header_read_timeout.as_secs())]
    header_read_timeout_secs: u64,
    /// Seconds one request may take, body included (a websocket ends it at the upgrade).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = Limits::default().request_timeout.as_secs())]
    request_timeout_secs: u64,
    /// Seconds a write may wait on a client that reads nothing before it is closed.
    #[arg(long, env = "WRITE_STALL_TIMEOUT_SECS", default_value_t = Limits::default().write_stall_timeout.as_secs())]
    write_stall_timeout_secs: u64,
    /// Feed websockets waiting to authenticate, in all.
    #[arg(long, env = "MAX_UNAUTHENTICATED_SOCKETS", default_value_t = Limits::default().max_unauthenticated_sockets)]
    max_unauthenticated_sockets: usize,
    /// Open feed websockets per user.
    #[arg(long, env = "MAX_FEEDS_PER_USER", default_value_t = Limits::default().max_feeds_per_user)]
    max_feeds_per_user: usize,
    /// Bytes request bodies being read may hold in memory, in all.
    #[arg(long, env = "BODY_BUFFER_BYTES", alias = "upload-buffer-bytes", default_value_t = Limits::default().body_buffer_bytes)]
    body_buffer_bytes: u64,
    /// Shard uploads in flight per user.
    #[arg(long, env = "MAX_UPLOADS_PER_USER", default_value_t = Limits::default().max_uploads_per_user)]
    max_uploads_per_user: usize,
    /// Pieces of shards read from the store at once.
    #[arg(long, env = "MAX_CONCURRENT_SHARD_READS", default_value_t = Limits::default().max_concurrent_shard_reads)]
    max_concurrent_shard_reads: usize,
    /// Bytes one batch read of shards may answer.
    #[arg(long, env = "MAX_FETCH_BYTES", default_value_t = Limits::default().max_fetch_bytes)]
    max_fetch_bytes: u64,
    /// Sign-in requests per client address: the burst…
    #[arg(long, env = "AUTH_BURST_PER_ADDRESS", default_value_t = Limits::default().auth_burst_per_address)]
    auth_burst_per_address: u32,
    /// …and the steady rate per second.
    #[arg(long, env = "AUTH_PER_SECOND_PER_ADDRESS", default_value_t = Limits::default().auth_per_second_per_address)]
    auth_per_second_per_address: f64,
    /// Sign-ups per client address: the burst…
    #[arg(long, env = "SIGNUP_BURST_PER_ADDRESS", default_value_t = Limits::default().signup_burst_per_address)]
    signup_burst_per_address: u32,
    /// …and the steady rate per second.
    #[arg(long, env = "SIGNUPS_PER_SECOND_PER_ADDRESS",
          default_value_t = Limits::default().signups_per_second_per_address)]
    signups_per_second_per_address: f64,
    /// Challenges, logins and password changes per username: the burst…
    #[arg(long, env = "AUTH_BURST_PER_USERNAME", default_value_t = Limits::default().auth_burst_per_username)]
    auth_burst_per_username: u32,
    /// …and the steady rate per second.
    #[arg(long, env = "AUTH_PER_SECOND_PER_USERNAME", default_value_t = Limits::default().auth_per_second_per_username)]
    auth_per_second_per_username: f64,
    /// Failed logins per username before each further one doubles the wait.
    #[arg(long, env = "FREE_LOGIN_FAILURES", default_value_t = Limits::default().free_login_failures)]
    free_login_failures: u32,
    /// The first wait after those, in milliseconds.
    #[arg(long, env = "LOGIN_BACKOFF_BASE_MS",
          default_value_t = Limits::default().login_backoff_base.as_millis() as u64)]
    login_backoff_base_ms: u64,
    /// The longest wait, in milliseconds.
    #[arg(long, env = "LOGIN_BACKOFF_MAX_MS", default_value_t = Limits::default().login_backoff_max.as_millis() as u64)]
    login_backoff_max_ms: u64,
    /// Live sessions per user; one more revokes the oldest.
    #[arg(long, env = "MAX_SESSIONS_PER_USER", default_value_t = Limits::default().max_sessions_per_user)]
    max_sessions_per_user: usize,
}

impl LimitArgs {
    fn into_limits(self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            trusted_proxies: self.trusted_proxies,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            write_stall_timeout: Duration::from_secs(self.write_stall_timeout_secs),
            max_unauthenticated_sockets: self.max_unauthenticated_sockets,
            max_feeds_per_user: self.max_feeds_per_user,
            body_buffer_bytes: self.body_buffer_bytes,
            max_uploads_per_user: self.max_uploads_per_user,
            max_concurrent_shard_reads: self.max_concurrent_shard_reads,
            max_fetch_bytes: self.max_fetch_bytes,
            auth_burst_per_address: self.auth_burst_per_address,
            auth_per_second_per_address: self.auth_per_second_per_address,
            signup_burst_per_address: self.signup_burst_per_address,
            signups_per_second_per_address: self.signups_per_second_per_address,
            auth_burst_per_username: self.auth_burst_per_username,
            auth_per_second_per_username: self.auth_per_second_per_username,
            free_login_failures: self.free_login_failures,
            login_backoff_base: Duration::from_millis(self.login_backoff_base_ms),
            login_backoff_max: Duration::from_millis(self.login_backoff_max_ms),
            max_sessions_per_user: self.max_sessions_per_user,
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A migration prints its own progress; the log says only what went wrong.
    let default_level = if cli.command.is_some() { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .init();
    let args = match cli.command {
        Some(Command::Migrate(args)) => return run_migrate(args).await,
        None => cli.serve,
    };

    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("accelerator: cannot listen on {}:{}: {e}", args.host, args.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut config = Config::new(args.data_dir);
    config.database = args.database;
    config.shards = args.shards;
    config.www_dir = args.www_dir;
    config.pkg_dir = args.pkg_dir;
    config.change_log_retain = args.change_log_retain;
    config.session_ttl = Duration::from_secs(args.session_ttl_secs);
    config.feed_catch_up = Duration::from_secs(args.feed_catch_up_secs.max(1));
    config.bench_endpoints = args.bench_endpoints;
    config.shard_grace = Duration::from_secs(args.shard_grace_secs);
    config.gc_interval = Duration::from_secs(args.gc_interval_secs);
    config.space_quota_bytes = args.space_quota_bytes;
    config.user_allowance_bytes = args.user_allowance_bytes;
    config.limits = args.limits.into_limits();
    config.public_origins = args.public_origins;

    match listener.local_addr() {
        Ok(addr) => println!("accelerator listening on http://{addr}"),
        Err(e) => eprintln!("accelerator: {e}"),
    }
    match coffer_accelerator::run(listener, config, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accelerator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `accelerator migrate`: progress on stderr, the report on stdout.
async fn run_migrate(args: MigrateArgs) -> std::process::ExitCode {
    let shards = match ObjectShards::from_url(&args.to_shards) {
        Ok(shards) => shards,
        Err(e) => {
            eprintln!("accelerator migrate: {}: {e}", args.to_shards);
            return std::process::ExitCode::FAILURE;
        }
    };
    let options = migrate::Options { concurrency: args.concurrency as usize, ..Default::default() };
    // A line per table, and a line per second about shards.
    let mut last = Instant::now();
    let progress = move |p: Progress| match p {
        Progress::Table { phase, table, rows } => {
            let verb = if phase == Phase::Copy { "copied" } else { "verified" };
            eprintln!("{verb} {table}: {rows} rows");
        }
        Progress::Shard { phase, done, total } => {
            if done == total || last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                let verb = if phase == Phase::Copy { "copying" } else { "verifying" };
                eprintln!("{verb} shards: {done}/{total}");
            }
        }
    };
    let dir = &args.from_data_dir;
    let answer = if args.verify_only {
        migrate::verify(dir, &args.to_database, &shards, &options, progress).await.map(|v| v.to_string())
    } else {
        migrate::migrate(dir, &args.to_database, &shards, &options, progress).await.map(|r| r.to_string())
    };
    match answer {
        Ok(report) => {
            println!("{report}");
            if !args.verify_only {
                println!("now start the accelerators with --database and --shards naming the target");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("accelerator migrate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
