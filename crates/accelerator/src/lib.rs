//! # coffer-accelerator
//!
//! Coffer's server. It signs users in without ever seeing their password, stores
//! their kv values (sealed, or plaintext with a MAC, as the client sent them), keeps
//! a per-user change log and fans each change out to the user's devices over a
//! websocket. It stores files' erasure-coded shards by their hash, the spaces they
//! are shared in with their members and invites, and each file's sealed manifest.
//! It never holds a key: every secret is derived in the browser.
//!
//! Routes and bodies are [`coffer_core::proto`]'s, so client and server share one
//! definition. Start it in process with [`run`]; `main.rs` is the command line.
//!
//! # Layout
//!
//! - [`config`] — [`Config`]: data directory, static directories, limits.
//! - [`server`] — shared state, router, CORS, body and time limits, static files
//!   with their security headers, shutdown.
//! - [`listener`] — the accept loop: connection caps, header and write-stall
//!   timeouts, the descriptor limit.
//! - [`throttle`] — sign-in rate limits per address and username, and the growing
//!   wait after failed logins.
//! - [`error`] — [`error::ApiError`], the one error type (status + `{code, message}`),
//!   and the [`error::Json`] extractor whose rejections are `ApiError`s too.
//! - [`auth`] — salt, sign-up, challenge, login, session, password change, sign-out;
//!   the `Authorization: Bearer` extractor.
//! - [`kv`] — set, get, delete, list.
//! - [`feed`] — the change-feed websocket and the hub that wakes it.
//! - [`shards`] — upload, read, "which are missing", batch read.
//! - [`spaces`] — create, list, invite, join, members, leave, remove, usage.
//! - [`files`] — commit, list, get, delete.
//! - [`gc`] — storing and freeing shards in step with their records, and the
//!   collector of shards no file references.
//! - [`store`] — the [`store::Records`] trait and its SQLite backend; the
//!   [`store::shards::ShardStore`] trait and its directory backend.
//! - [`budget`] — room in memory for large request bodies (shard uploads, commits),
//!   in all and per user.
//! - [`bench`] — a websocket echo for `scripts/bench`, mounted only on request.

pub mod auth;
pub mod bench;
pub mod budget;
pub mod config;
pub mod error;
pub mod feed;
pub mod files;
pub mod gc;
pub mod kv;
pub mod listener;
pub mod server;
pub mod shards;
pub mod spaces;
pub mod store;
pub mod throttle;

use std::future::Future;

pub use config::Config;

/// Serves the accelerator on `listener` until `shutdown` completes, then stops
/// accepting, lets open requests finish, closes feed websockets, stops the shard
/// collector and returns.
///
/// Creates `config.data_dir` if needed; fails if the database, the shard directory
/// or the server secret there cannot be opened.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, config, shutdown).await
}
