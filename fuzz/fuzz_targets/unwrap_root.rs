//! `WrapKey::unwrap` on arbitrary bytes: never panics, never accepts a forgery.
#![no_main]

use coffer_core::account::{AccountError, PasswordKey, WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let wrap = PasswordKey::from_bytes([9; 32]).wrap_key();
    match wrap.unwrap("ada", data) {
        Err(AccountError::UnknownVersion(v)) => assert_ne!(v, WRAPPED_ROOT_VERSION),
        Err(AccountError::Malformed) => assert_ne!(data.len(), WRAPPED_ROOT_LEN),
        Err(AccountError::Unwrap) => assert_eq!(data.len(), WRAPPED_ROOT_LEN),
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("a wrapped root the fuzzer made up opened"),
    }
});
