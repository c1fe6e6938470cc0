//! # coffer
//!
//! The JavaScript-facing layer of Coffer, compiled to WebAssembly by wasm-pack. It
//! converts between JS values and the core's types and moves bytes over `fetch` and
//! `WebSocket`; every computation a test could check without a browser lives in
//! `coffer-core`.
//!
//! # Layout
//!
//! - [`client`] — `Client`: sign-up, sign-in, resume, anonymous, sign-out.
//! - [`session`] — the state a client's calls share; the classes below hold it.
//! - [`kv`] — `client.kv`: get / set / delete / list / on; every name sent sealed.
//! - [`legacy_names`] — kv keys stored under plaintext names, moved to sealed ones.
//! - [`storage`] — `client.storage`: write, read (bytes, Blob, stream), list, delete.
//! - [`spaces`] — `client.space`: create, list, invite, join, members, leave, usage.
//! - [`keyring`] — the space keys this account holds (sealed `$spaces`).
//! - [`listing`] — lists that return the good entries and say which were `skipped`.
//! - [`feed`] — the change-feed websocket: auth frame, resume, backoff.
//! - [`events`] — listeners and their after-the-call delivery.
//! - [`tabs`] — what one account's tabs share: a channel, the feed's leader, locks.
//! - [`auth`] — the account flows against the accelerator.
//! - [`http`] — JSON over `fetch`, the session header, error bodies.
//! - [`body`] — answers read as they arrive, capped by what a valid one holds.
//! - [`remember`] — what `remember` keeps in session/local storage.
//! - [`device`] — what the SDK keeps in IndexedDB (`browser.js`), sealed.
//! - [`error`] — the one conversion to a JS `Error` with a stable `code`.
//! - [`options`], [`json`], [`js`], [`random`], [`timer`] — small boundary helpers.
//! - [`copies`] — the bytes the file pipeline copies, counted for the benchmark.
//! - `types.d.ts` — the hand-written TypeScript merged into the generated `.d.ts`.
//! - `bench` — with the `bench` feature only: per-chunk benchmark entry points for
//!   `scripts/bench` (never in the shipped package).

pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod body;
pub mod client;
pub mod copies;
pub mod device;
pub mod error;
pub mod events;
pub mod feed;
pub mod http;
pub mod js;
pub mod json;
pub mod keyring;
pub mod kv;
pub mod legacy_names;
pub mod listing;
pub mod offline;
pub mod options;
pub mod random;
pub mod remember;
pub mod rotation;
pub mod session;
pub mod spaces;
pub mod storage;
pub mod tabs;
pub mod timer;

pub use client::Client;
pub use kv::Kv;
pub use spaces::Spaces;
pub use storage::Storage;

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = include_str!("types.d.ts");

/// Installs the panic hook once, so a bug shows a readable message in the console.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}
