//! A count of the bytes the SDK copies while it moves files (slices read out of a
//! Blob, bytes into and out of wasm memory, buffers joined), kept per wasm instance:
//! the page's and each worker's. `scripts/bench` reports it per chunk; nothing else
//! reads it. Copies the browser makes inside an API (`fetch` taking a body,
//! WebCrypto taking its input) are not ours to count.

use std::cell::Cell;

use wasm_bindgen::prelude::*;

thread_local! {
    static COPIED: Cell<f64> = const { Cell::new(0.0) };
}

/// Notes `bytes` copied.
pub fn copied(bytes: usize) {
    COPIED.with(|c| c.set(c.get() + bytes as f64));
}

/// Bytes this instance has copied so far. Internal: for `scripts/bench`.
#[wasm_bindgen(js_name = copiedBytes, skip_typescript)]
pub fn copied_bytes() -> f64 {
    COPIED.with(Cell::get)
}
