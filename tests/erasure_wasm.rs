//! The core's erasure code as the browser runs it — its SIMD128 kernel, which native
//! tests never reach — against `reed-solomon-erasure` 6 in the same wasm: the same
//! shards byte for byte, and rebuilt bytes from lost shards, for every shape
//! (crates/core/tests/erasure_crate.rs checks the portable and SSSE3 kernels).
#![cfg(target_arch = "wasm32")]

use coffer_core::erasure;
use coffer_core::shard::ShardAddress;
use reed_solomon_erasure::galois_8::ReedSolomon;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Lengths around the kernel's 16-byte vectors and its 4 KiB blocks.
const LENGTHS: [usize; 7] = [1, 15, 16, 17, 16 * 8 + 5, 4096 * 8 + 3, 100_003];

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8).collect()
}

#[wasm_bindgen_test]
fn simd128_erasure_code_is_the_crates() {
    for k in 1..=8 {
        for m in 1..=4 {
            for len in LENGTHS {
                let input = pattern(len, (k * 10 + m) as u32);
                let shards = erasure::encode(&input, k, m).unwrap();

                let mut theirs = shards.clone();
                for parity in &mut theirs[k..] {
                    parity.fill(0);
                }
                ReedSolomon::new(k, m).unwrap().encode(&mut theirs).unwrap();
                assert!(shards == theirs, "{k} + {m}, {len} bytes: not the crate's parity");

                // Lose the first min(k, m) data shards: as many parity shards as
                // can take part in rebuilding them.
                let addresses: Vec<ShardAddress> = shards.iter().map(|s| ShardAddress::of(s)).collect();
                let got = shards.iter().enumerate().map(|(i, s)| (i >= k.min(m)).then(|| s.clone())).collect();
                let rebuilt = erasure::reconstruct(got, &addresses, k, m, len).unwrap();
                assert!(rebuilt == input, "{k} + {m}, {len} bytes: not rebuilt");
            }
        }
    }
}
