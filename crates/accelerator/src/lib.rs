//! # coffer-accelerator
//!
//! Coffer's server. It signs users in without ever seeing their password, stores
//! their kv values (sealed, or plaintext with a MAC, as the client sent them), keeps
//! a per-user change log and fans each change out to the user's devices over a
//! websocket. It stores files' erasure-coded shards by their hash, the spaces they
//! are shared in with their members and invites, each file's sealed manifest, and
//! each space's key epochs: its roster, its keys sealed to each member and the links
//! between them. It never holds a key: every secret is derived in the browser.
//!
//! Routes and bodies are [`coffer_core::proto`]'s, so client and server share one
//! definition. Start it in process with [`run`]; `main.rs` is the command line.
//!
//! # Layout
//!
//! The layers, each using only those below it:
//!
//! - [`server`] — opens the stores, builds the shared state, starts the collector
//!   and serves until shutdown; [`listener`] — the accept loop: connection caps,
//!   header and write-stall timeouts, the descriptor limit.
//! - [`routes`] — the router (body rules, request timeout, CORS, the demo with its
//!   security headers) and the routes, a module per group: [`routes::auth`] (salt,
//!   sign-up, challenge, login, session, password, sign-out, public key, recovery
//!   codes),
//!   [`routes::kv`], [`routes::feed`] (the change-feed websocket and the hub that
//!   wakes it), [`routes::shards`], [`routes::spaces`], [`routes::space_keys`]
//!   (roster, keys, rotation), [`routes::files`], [`routes::bench`] (measuring
//!   aids, mounted only on request).
//! - [`budget`] — room in memory for request bodies, in all and per user;
//!   [`throttle`] — sign-in rate limits per address and username, and the growing
//!   wait after failed logins; [`error`] — [`error::ApiError`], the one error type
//!   (status + `{code, message}`), and extractors whose rejections are `ApiError`s.
//! - [`state`] — what every route shares: records, shards, limits, the clock;
//!   [`session`] — the bearer extractor; [`hub`] — wakes a user's feeds, and
//!   [`fanout`] wakes them when another accelerator wrote; [`per_user`] — counts
//!   per user; [`secret`] — the server secret, and the key pair derived from it
//!   that proofs of the root are made to.
//! - [`gc`] — the collector's loop; [`backends`] — opens the records and shards the
//!   config names.
//! - [`store`] — the records' traits by domain ([`store::Records`]) with their
//!   SQLite and PostgreSQL backends, the [`store::shards::ShardStore`] trait with
//!   [`store::objects::ObjectShards`] (a directory or S3), and the
//!   [`store::keeper::ShardKeeper`] that keeps records and shards in step.
//! - [`config`] — [`Config`]: data directory, backends, static directories, limits.
//!
//! Beside the server, [`migrate`] moves an embedded deployment (SQLite and a shard
//! directory) to PostgreSQL and S3 (`accelerator migrate`).

pub mod backends;
pub mod budget;
pub mod config;
pub mod error;
pub mod fanout;
pub mod gc;
pub mod hub;
pub mod listener;
pub mod migrate;
pub mod per_user;
pub mod routes;
pub mod secret;
pub mod server;
pub mod session;
pub mod state;
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
