//! `KvKeys::decode` on arbitrary wire JSON (a `KvValue` as the accelerator returns
//! it) and on arbitrary envelope / MAC text: never panics, never accepts a forgery.
#![no_main]

use coffer_core::account::RootSecret;
use coffer_core::kv::{KvKeys, KvScope};
use coffer_core::proto::KvValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = KvKeys::derive(&RootSecret::from_bytes([7; 32]));
    let scope = KvScope { user_id: "usr_fuzz", collection: "todos", id: "t1" };
    if let Ok(value) = serde_json::from_slice::<KvValue>(data) {
        assert!(keys.decode(&scope, &value).is_err(), "a made-up value authenticated");
    }
    let text = String::from_utf8_lossy(data);
    assert!(keys.decode(&scope, &KvValue::Sealed { envelope: text.to_string() }).is_err());
    let mid = (0..=text.len() / 2).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let (json, mac) = text.split_at(mid);
    let plain = KvValue::Plain { json: json.to_owned(), mac: mac.to_owned() };
    assert!(keys.decode(&scope, &plain).is_err());
});
