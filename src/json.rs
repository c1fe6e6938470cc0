//! JSON at the JS boundary. `JSON.stringify` silently drops functions, turns `NaN`
//! into `null` and skips `undefined` in arrays; a stored value that comes back
//! different from what was set is data loss, so values that JSON cannot hold exactly
//! are refused with `InvalidInput` instead.

use wasm_bindgen::prelude::*;

use crate::error::{SdkError, SdkResult, describe_js};

#[wasm_bindgen(inline_js = r#"
export function strictStringify(value) {
  const text = JSON.stringify(value, function (key, v) {
    const where = key === "" ? "the value" : `property ${JSON.stringify(key)}`;
    const t = typeof v;
    if (t === "function" || t === "symbol" || t === "bigint") {
      throw new TypeError(`${where} is a ${t}, which JSON cannot hold`);
    }
    if (t === "number" && !Number.isFinite(v)) {
      throw new TypeError(`${where} is ${v}, which JSON cannot hold`);
    }
    if (v === undefined && (key === "" || Array.isArray(this))) {
      throw new TypeError(`${where} is undefined, which JSON cannot hold (use null)`);
    }
    return v;
  });
  return text;
}
"#)]
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
