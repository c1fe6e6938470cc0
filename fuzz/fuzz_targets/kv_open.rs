//! `KvKeys::open` on arbitrary bytes: never panics, never accepts a forgery.
#![no_main]

use coffer_core::account::RootSecret;
use coffer_core::kv::{KvError, KvKeys, KvScope, SEALED_VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = KvKeys::derive(&RootSecret::from_bytes([7; 32]));
    let scope = KvScope { user_id: "usr_fuzz", collection: "todos", id: "t1" };
    match keys.open(&scope, data) {
        Err(KvError::UnknownVersion(v)) => assert_ne!(v, SEALED_VERSION),
        Err(KvError::Malformed) => assert!(data.len() < 1 + 12 + 16),
        Err(_) => {}
        Ok(_) => panic!("an envelope the fuzzer made up authenticated"),
    }
});
