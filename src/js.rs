//! Small conveniences for building the plain JS objects the API returns.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

/// A plain object from `(key, value)` pairs.
pub fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let out = Object::new();
    for (key, value) in pairs {
        // Defining a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&out, &(*key).into(), value);
    }
    out.into()
}

/// A JS number from a `u64` (exact below 2^53, which every size and time here is).
pub fn number(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// Calls a progress callback, ignoring (but logging) what it throws: an app's bug in
/// a progress bar must not fail the upload.
pub fn report_progress(callback: Option<&js_sys::Function>, done: u64, total: u64) {
    if let Some(callback) = callback {
        if let Err(thrown) = callback.call2(&JsValue::NULL, &number(done), &number(total)) {
            web_sys::console::error_2(&"coffer: onProgress threw:".into(), &thrown);
        }
    }
}
