//! # coffer-core
//!
//! The pure heart of Coffer: everything that can be computed without a browser or a
//! network. Key derivation, envelopes, input validation and the wire types that the
//! SDK (`src/` at the repository root) and the accelerator (`crates/accelerator`) share.
//!
//! This crate does no I/O: it reads no clock, draws no randomness of its own and opens
//! no socket. Callers pass nonces, salts and secrets in, so every function here is
//! deterministic and can be pinned by test vectors. `SPEC.md` beside this crate
//! describes every byte it produces; constants here carry the names used there.
//!
//! # Layout
//!
//! - [`account`] — password → Argon2id → password key → login key + wrap key; the
//!   wrapped root secret.
//! - [`identity`] — each user's X25519 key pair, and messages sealed to one.
//! - [`kv`] — the kv keys and the sealed / MAC'd plaintext value envelopes.
//! - [`names`] — sealed kv names: what the accelerator sees of a collection or an id.
//! - [`legacy`] — moving kv keys stored under plain names to their sealed names.
//! - [`recovery`] — recovery codes: a printable code that stands in for a forgotten password.
//! - [`validate`] — what a collection, an id, a username and a value may be.
//! - [`proto`] — request/response bodies and websocket frames (JSON).
//! - [`code`] — the stable error codes every layer reports.
//! - [`b64`] — base64url (no padding), the text form of every binary field.
//! - [`chunk`] — file chunks sealed under their own random AES-256-GCM keys.
//! - [`erasure`] — Reed–Solomon k + m shards, checked against their addresses.
//! - [`shard`] — shard addresses: BLAKE3 of the shard, lowercase hex.
//! - [`manifest`] — the manifest (a file's read capability) and its chunk table.
//! - [`space`] — space keys, invite tokens, sealed file records and space names.
//! - [`epoch`] — a space's key epochs: the roster, rotation, and the chain back.
//! - [`pipeline`] — shards from a sealed chunk; the manifest's chunk tree in file order.
//! - [`device`] — records kept on the device, sealed under the account's keys.
//! - [`resume`] — a resumable upload's plan and the chunks it has stored.
//! - [`offline`] — offline kv: what is cached and queued, and what it answers.
//! - [`tabs`] — what the tabs of one account say to each other: names and messages.
#![forbid(unsafe_code)]

pub mod account;
pub mod b64;
pub mod chunk;
pub mod code;
pub mod device;
pub mod epoch;
pub mod erasure;
pub mod identity;
pub mod kv;
pub mod legacy;
pub mod manifest;
pub mod names;
pub mod offline;
pub mod pipeline;
mod primitives;
pub mod proto;
pub mod recovery;
pub mod resume;
pub mod shard;
pub mod space;
pub mod tabs;
pub mod validate;

pub use code::{Coded, ErrorCode};
