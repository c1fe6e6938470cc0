//! The plain JS values the API returns.

use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A result struct as a plain JS object, through `serde-wasm-bindgen` (JSON-compatible
/// settings: `None` becomes `null`, maps become objects). The structs hold strings,
/// `f64` numbers (every size and time fits one exactly below 2^53; an accelerator's
/// larger number shows as the nearest one rather than failing the call) and JS values
/// kept as they are (`serde_wasm_bindgen::preserve`), so this cannot fail.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> JsValue {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .expect("result structs hold only strings, numbers and JS values")
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

/// Logs a warning in the console: something the SDK recovered from, worth a look.
pub fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}
