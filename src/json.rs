//! JSON at the JS boundary. `JSON.stringify` silently drops functions, turns `NaN`
//! into `null` and skips `undefined` in arrays; a stored value that comes back
//! different from what was set is data loss, so values that JSON cannot hold exactly
//! are refused with `InvalidInput` instead.

use wasm_bindgen::prelude::*;

use crate::error::{SdkError, SdkResult, describe_js};

#[wasm_bindgen(module = "/src/browser.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = strictStringify)]
    fn strict_stringify(value: &JsValue) -> Result<String, JsValue>;
}

/// Serializes a JS value to JSON text, refusing what JSON cannot hold exactly.
pub fn stringify(value: &JsValue) -> SdkResult<String> {
    strict_stringify(value)
        .map_err(|e| SdkError::invalid(format!("cannot store this value as JSON: {}", describe_js(&e))))
}

/// Parses JSON text that the core has authenticated.
pub fn parse(text: &str) -> SdkResult<JsValue> {
    js_sys::JSON::parse(text).map_err(|e| SdkError::invalid(format!("stored value is not JSON: {}", describe_js(&e))))
}
