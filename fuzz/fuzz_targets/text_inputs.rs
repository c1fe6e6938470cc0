//! The text parsers: base64url (canonical: what decodes re-encodes to the same text)
//! and the validators (never panic; accepted values really are within the limits).
#![no_main]

use coffer_core::{b64, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(bytes) = b64::decode(text) {
        assert_eq!(b64::encode(bytes), text, "base64url decoding is not canonical");
    }
    if validate::value_json(text).is_ok() {
        assert!(text.len() <= validate::MAX_VALUE_BYTES);
    }
    for ok in [validate::id(text).is_ok(), validate::collection(text).is_ok()] {
        if ok {
            assert!(!text.is_empty() && text.len() <= validate::MAX_NAME_BYTES);
        }
    }
    if validate::username(text).is_ok() {
        assert!(text.is_ascii() && !text.is_empty() && text.len() <= validate::MAX_USERNAME_BYTES);
    }
});
