//! SPEC.md §4.4 (sealed kv names): a collection's and an id's sealed names re-derived
//! from the SPEC's text — the padding, the keyed hash, AES-256-CTR under it — and
//! pinned; and what opening refuses.

use aes::Aes256;
use coffer_core::account::RootSecret;
use coffer_core::b64;
use coffer_core::names::{NameError, NameKeys};
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn derive(root: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, root).expand(label, &mut out).unwrap();
    out
}

/// §4.4 step by step: pad to 32-byte blocks, siv = HMAC(mac key, label ‖ context ‖
/// padded)[0..16], name = b64(siv ‖ AES-256-CTR(seal key, siv, padded)).
fn by_the_spec(root: &[u8; 32], label: &[u8], context: &[u8], name: &str) -> String {
    let mut padded = name.as_bytes().to_vec();
    padded.resize(name.len().max(1).div_ceil(32) * 32, 0);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&derive(root, b"coffer/v1/kv-name-mac")).unwrap();
    mac.update(label);
    mac.update(context);
    mac.update(&padded);
    let siv: [u8; 16] = mac.finalize().into_bytes()[..16].try_into().unwrap();
    let seal = derive(root, b"coffer/v1/kv-name-seal");
    Ctr128BE::<Aes256>::new((&seal).into(), (&siv).into()).apply_keystream(&mut padded);
    b64::encode([&siv[..], &padded].concat())
}

fn lp(text: &str) -> Vec<u8> {
    [&(text.len() as u32).to_be_bytes()[..], text.as_bytes()].concat()
}

#[test]
fn names_are_what_4_4_says() {
    let root: [u8; 32] = core::array::from_fn(|i| i as u8);
    let keys = NameKeys::derive(&RootSecret::from_bytes(root));

    let collection = keys.seal_collection("medical");
    assert_eq!(collection, by_the_spec(&root, b"coffer/v1/kv-collection-name", b"", "medical"));
    let id = keys.seal_id("medical", "salary-2026");
    assert_eq!(id, by_the_spec(&root, b"coffer/v1/kv-id-name", &lp("medical"), "salary-2026"));
    let long = "ü".repeat(20); // 40 bytes: two blocks
    assert_eq!(keys.seal_id("medical", &long), by_the_spec(&root, b"coffer/v1/kv-id-name", &lp("medical"), &long));
    assert_eq!(keys.seal_collection("$spaces"), by_the_spec(&root, b"coffer/v1/kv-collection-name", b"", "$spaces"));

    // Pinned: a change to the format is a visible diff here.
    assert_eq!(collection, "har8FRZHyn7NNn7uJe-GKLu4dLrSPqfIGf0KBGphCQPcUAd23N_P9WXU22BnyCLI");
    assert_eq!(id, "_jf6Oaw__xfe7DGEMnj6YRbEzjQQhY8_hK_7_DU_HWtfLinq7DCTYCg-MuE8OfwM");
}

#[test]
fn opening_refuses_what_no_device_sealed() {
    let root: [u8; 32] = core::array::from_fn(|i| i as u8);
    let keys = NameKeys::derive(&RootSecret::from_bytes(root));
    let id = keys.seal_id("medical", "x");
    assert_eq!(keys.open_id("medical", &id).unwrap(), "x");

    // A name sealed with a NUL inside (which no app name holds) does not open, nor
    // one padded beyond its blocks.
    let nul = by_the_spec(&root, b"coffer/v1/kv-id-name", &lp("medical"), "a\0b");
    assert_eq!(keys.open_id("medical", &nul), Err(NameError::Malformed));
    let mut padded = vec![b'x'];
    padded.resize(64, 0);
    let overlong = by_the_spec(&root, b"coffer/v1/kv-id-name", &lp("medical"), std::str::from_utf8(&padded).unwrap());
    assert_eq!(keys.open_id("medical", &overlong), Err(NameError::Malformed));
    // Legacy plaintext names, and text of the wrong length, are no sealed names.
    for text in ["todos", "t1", "", &id[..id.len() - 1]] {
        assert!(keys.open_collection(text).is_err(), "{text:?}");
    }
}
