//! GF(2⁸) for Coffer's erasure code (coffer-core's `erasure`, SPEC.md F.3): the field
//! ([`field`]) and the multiply-accumulate loop every parity and rebuilt shard goes
//! through ([`kernel`]), vectorised with SIMD128 in the browser and SSSE3 natively.
//!
//! A crate of its own so that coffer-core keeps `#![forbid(unsafe_code)]`: the vector
//! loads and stores here are the workspace's only `unsafe`, in two small modules of
//! `kernel`, each block with the reason it holds. Everything is checked against the
//! field's definition (here) and against `reed-solomon-erasure` (coffer-core's
//! `tests/erasure_crate.rs`, and `tests/erasure_wasm.rs` in the browser).
#![deny(unsafe_code)]

pub mod field;
pub mod kernel;

pub use kernel::{Multiplier, mul_add, mul_add_matrix};
