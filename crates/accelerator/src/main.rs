//! `accelerator`: runs Coffer's server from the command line.
//!
//! ```text
//! accelerator --port 8080 --data-dir ./data --www-dir www --pkg-dir pkg
//! ```
//!
//! Every flag also reads an environment variable (`PORT`, `DATA_DIR`, …). Stops
//! cleanly on Ctrl-C and SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use coffer_accelerator::Config;

/// Coffer's accelerator: sign-in, the kv store and its change feed, shards, spaces
/// and files.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// Directory for the database and the server secret.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
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
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();

    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("accelerator: cannot listen on {}:{}: {e}", args.host, args.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut config = Config::new(args.data_dir);
    config.www_dir = args.www_dir;
    config.pkg_dir = args.pkg_dir;
    config.change_log_retain = args.change_log_retain;
    config.session_ttl = Duration::from_secs(args.session_ttl_secs);
    config.bench_endpoints = args.bench_endpoints;
    config.shard_grace = Duration::from_secs(args.shard_grace_secs);
    config.gc_interval = Duration::from_secs(args.gc_interval_secs);
    config.space_quota_bytes = args.space_quota_bytes;

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
