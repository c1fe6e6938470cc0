//! # coffer-accelerator
//!
//! Coffer's server. It signs users in without ever seeing their password, stores
//! their kv values (sealed, or plaintext with a MAC, as the client sent them), keeps
//! a per-user change log and fans each change out to the user's devices over a
//! websocket. It never holds a key: every secret is derived in the browser.
//!
//! Routes and bodies are [`coffer_core::proto`]'s, so client and server share one
//! definition. Start it in process with [`run`]; `main.rs` is the command line.
//!
//! # Layout
//!
//! - [`config`] — [`Config`]: data directory, static directories, limits.
//! - [`server`] — shared state, router, CORS, body limit, static files, shutdown.
//! - [`error`] — [`error::ApiError`], the one error type (status + `{code, message}`),
//!   and the [`error::Json`] extractor whose rejections are `ApiError`s too.
//! - [`auth`] — salt, sign-up, challenge, login, session, password change, sign-out;
//!   the `Authorization: Bearer` extractor.
//! - [`kv`] — set, get, delete, list.
//! - [`feed`] — the change-feed websocket and the hub that wakes it.
//! - [`store`] — the [`store::Records`] trait and its SQLite backend.
//! - [`bench`] — a websocket echo for `scripts/bench`, mounted only on request.

pub mod auth;
pub mod bench;
pub mod config;
pub mod error;
pub mod feed;
pub mod kv;
pub mod server;
pub mod store;

use std::future::Future;

pub use config::Config;

/// Serves the accelerator on `listener` until `shutdown` completes, then stops
/// accepting, lets open requests finish, closes feed websockets and returns.
///
/// Creates `config.data_dir` if needed; fails if the database or the server
/// secret there cannot be opened.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, config, shutdown).await
}
