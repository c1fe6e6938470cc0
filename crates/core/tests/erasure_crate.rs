//! The core's Reed–Solomon code (SPEC.md F.3, `erasure`) against
//! `reed-solomon-erasure` 6's `galois_8`, the crate it replaced: byte for byte the
//! same parity, and the same bytes back from any erasure pattern.
//!
//! - every shape k + m (k 1–8, m 1–4), random lengths from 1 byte to a few hundred
//!   KiB: the same shards; any ≤ m lost shards rebuild the input, as they do with
//!   the crate;
//! - every erasure pattern of every shape, exhaustively, on a short input;
//! - a forged shard whose address was forged with it (a lying manifest): the core
//!   decodes from the same shards as the crate, so it returns the crate's (wrong)
//!   bytes — which AES-GCM then refuses.

use coffer_core::erasure::{self, ErasureError};
use coffer_core::shard::ShardAddress;
use proptest::prelude::*;
use proptest::sample::subsequence;
use reed_solomon_erasure::galois_8::ReedSolomon;

/// `len` bytes from a seed (a proptest `Vec` of a few hundred KiB is slow to make).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// The crate's shards for `input`: the same data shards, its parity.
fn crate_encode(input: &[u8], k: usize, m: usize) -> Vec<Vec<u8>> {
    let s = erasure::shard_len(input.len(), k);
    let mut padded = input.to_vec();
    padded.resize((k + m) * s, 0);
    let mut shards: Vec<Vec<u8>> = padded.chunks_exact(s).map(<[u8]>::to_vec).collect();
    ReedSolomon::new(k, m).unwrap().encode(&mut shards).unwrap();
    shards
}

/// The crate's first `len` bytes of the data shards rebuilt from `shards`.
fn crate_reconstruct(mut shards: Vec<Option<Vec<u8>>>, k: usize, m: usize, len: usize) -> Vec<u8> {
    ReedSolomon::new(k, m).unwrap().reconstruct_data(&mut shards).unwrap();
    let mut out: Vec<u8> = shards.into_iter().take(k).flatten().flatten().collect();
    out.truncate(len);
    out
}

fn addresses(shards: &[Vec<u8>]) -> Vec<ShardAddress> {
    shards.iter().map(|s| ShardAddress::of(s)).collect()
}

/// Checks the shards of `input` and its rebuild with the shards in `lost` missing
/// against the crate.
fn check(input: &[u8], k: usize, m: usize, lost: &[usize]) -> Result<(), TestCaseError> {
    let shards = erasure::encode(input, k, m).unwrap();
    prop_assert!(shards == crate_encode(input, k, m), "{k} + {m}, {} bytes: not the crate's shards", input.len());
    let mut got: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
    for &i in lost {
        got[i] = None;
    }
    let rebuilt = erasure::reconstruct(got.clone(), &addresses(&shards), k, m, input.len()).unwrap();
    prop_assert!(rebuilt == input, "{k} + {m}, {} bytes, lost {lost:?}: not the input", input.len());
    prop_assert!(crate_reconstruct(got, k, m, input.len()) == input);
    Ok(())
}

/// A shape, a length, a seed for the input and ≤ m shards to lose.
fn case() -> impl Strategy<Value = (usize, usize, usize, u64, Vec<usize>)> {
    (1usize..=8, 1usize..=4).prop_flat_map(|(k, m)| {
        let len = prop_oneof![
            3 => 1usize..=64,
            3 => 65usize..=20_000,
            1 => 100_000usize..=400_000,
        ];
        (Just(k), Just(m), len, any::<u64>(), subsequence((0..k + m).collect::<Vec<_>>(), 0..=m))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn same_shards_and_rebuild_as_the_crate((k, m, len, seed, lost) in case()) {
        check(&bytes(len, seed), k, m, &lost)?;
    }

    #[test]
    fn forged_shard_decodes_as_with_the_crate((k, m, len, seed, lost) in case(), forged_seed: u64) {
        let input = bytes(len.min(5000), seed);
        let mut shards = erasure::encode(&input, k, m).unwrap();
        let mut got: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
        for &i in &lost {
            got[i] = None;
        }
        // The first parity shard among the `k` the decoder reads, if it reads one.
        let read: Vec<usize> = (0..k + m).filter(|&i| got[i].is_some()).take(k).collect();
        if let Some(&forged) = read.iter().find(|&&i| i >= k) {
            let forgery = bytes(shards[forged].len(), forged_seed);
            shards[forged] = forgery.clone();
            got[forged] = Some(forgery);
        }
        let ours = erasure::reconstruct(got.clone(), &addresses(&shards), k, m, input.len()).unwrap();
        prop_assert_eq!(ours, crate_reconstruct(got, k, m, input.len()));
    }
}

/// Every pattern of ≤ m lost shards rebuilds, for every shape; every pattern of
/// m + 1 is `TooFewShards`.
#[test]
fn every_erasure_pattern_of_every_shape() {
    for k in 1..=8 {
        for m in 1..=4 {
            let input = bytes(3 * k + 1, (k * 10 + m) as u64);
            let shards = erasure::encode(&input, k, m).unwrap();
            let addresses = addresses(&shards);
            for pattern in 0u32..1 << (k + m) {
                let lost: Vec<usize> = (0..k + m).filter(|i| pattern & (1 << i) != 0).collect();
                if lost.len() <= m {
                    check(&input, k, m, &lost).unwrap();
                } else if lost.len() == m + 1 {
                    let got = (0..k + m).map(|i| (!lost.contains(&i)).then(|| shards[i].clone())).collect();
                    let err = erasure::reconstruct(got, &addresses, k, m, input.len()).unwrap_err();
                    assert_eq!(err, ErasureError::TooFewShards { good: k - 1, needed: k });
                }
            }
        }
    }
}
