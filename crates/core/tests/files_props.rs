//! Properties of the file pipeline (DESIGN §5): seal → erasure-code → store →
//! lose or corrupt shards → rebuild → open, over file sizes around chunk and shard
//! boundaries, with small chunks so that chunk tables of several levels appear.
//!
//! - any ≤ m damaged shards of every chunk and table node: the file reads back
//!   byte-identical, metadata included;
//! - m + 1 damaged shards of any one of them: `Integrity`, never other bytes.

mod files_common;

use coffer_core::ErrorCode;
use coffer_core::chunk::{CHUNK_OVERHEAD, ChunkPos};
use coffer_core::manifest::{FileParams, MAX_MANIFEST_LEN, Manifest};
use files_common::{Rng, Store, damage_shards, read_file, write_file};
use proptest::prelude::*;

/// Small chunks (so tables appear) and one larger size; every legal shard shape.
fn params() -> impl Strategy<Value = FileParams> {
    (prop_oneof![3 => 1024u32..=4096, 1 => Just(64 * 1024)], 1u8..=8, 1u8..=4)
        .prop_map(|(chunk_size, data_shards, parity_shards)| FileParams { chunk_size, data_shards, parity_shards })
}

/// A size near a boundary: `whole` full chunks, then a tail that is empty, a full
/// chunk, a sealed length that is a multiple of k (a shard boundary) or one byte,
/// then `delta` bytes either way.
fn size(p: FileParams, whole: u64, tail: u8, shard: u16, delta: i64) -> u64 {
    let c = u64::from(p.chunk_size);
    let k = u64::from(p.data_shards);
    let tail = match tail {
        0 => 0,
        1 => c,
        2 => {
            // sealed = plain + 16 = k × s, with plain in [0, c].
            let lo = (CHUNK_OVERHEAD as u64).div_ceil(k);
            let hi = (c + CHUNK_OVERHEAD as u64) / k;
            k * (lo + u64::from(shard) % (hi - lo + 1)) - CHUNK_OVERHEAD as u64
        }
        _ => 1,
    };
    (whole * c + tail).saturating_add_signed(delta)
}

fn case() -> impl Strategy<Value = (FileParams, u64, u64)> {
    (params(), 0u64..=12, 0u8..4, any::<u16>(), -2i64..=2, any::<u64>()).prop_map(
        |(p, whole, tail, shard, delta, seed)| {
            let whole = if p.chunk_size > 4096 { whole % 3 } else { whole };
            (p, size(p, whole, tail, shard, delta), seed)
        },
    )
}

fn metadata(rng: &mut Rng) -> String {
    let name: String = (0..rng.below(150)).map(|_| char::from(b'a' + rng.below(26) as u8)).collect();
    format!(r#"{{"name":"{name}.bin","type":"application/octet-stream"}}"#)
}

/// Counts the sealed objects (chunks and table nodes) a clean read visits.
fn objects(text: &str, store: &Store) -> u64 {
    let mut n = 0;
    read_file(text, store, &mut |_, _| n += 1).unwrap();
    n
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn up_to_m_damaged_shards_read_back_identical((p, size, seed) in case()) {
        let mut rng = Rng(seed);
        let data = rng.bytes(size as usize);
        let meta = metadata(&mut rng);
        let mut store = Store::new();
        let text = write_file(&mut store, p, &data, &meta, &mut rng);
        prop_assert!(text.len() <= MAX_MANIFEST_LEN);
        let m = Manifest::parse(&text).unwrap();
        prop_assert_eq!(m.chunk_count(), size.div_ceil(u64::from(p.chunk_size)));
        let parity = p.parity();
        let read = read_file(&text, &store, &mut |_, shards| {
            let count = rng.below(parity as u64 + 1) as usize;
            damage_shards(&mut rng, shards, count);
        });
        prop_assert_eq!(read, Ok((data, meta)));
    }

    #[test]
    fn m_plus_one_damaged_shards_fail_with_integrity((p, size, seed) in case()) {
        let mut rng = Rng(seed);
        let data = rng.bytes(size as usize);
        let mut store = Store::new();
        let text = write_file(&mut store, p, &data, "{}", &mut rng);
        let total = objects(&text, &store);
        prop_assume!(total > 0);
        let target = rng.below(total);
        let (parity, all) = (p.parity(), p.total_shards());
        let mut seen = 0;
        let mut hit: Option<ChunkPos> = None;
        let read = read_file(&text, &store, &mut |pos, shards| {
            // The target loses more than m; every other object up to m.
            let count = if seen == target {
                hit = Some(pos);
                parity + 1 + rng.below((all - parity - 1) as u64 + 1) as usize
            } else {
                rng.below(parity as u64 + 1) as usize
            };
            seen += 1;
            damage_shards(&mut rng, shards, count);
        });
        prop_assert!(hit.is_some());
        prop_assert_eq!(read, Err(ErrorCode::Integrity));
    }
}

/// The sizes the brief names, for the default shard shape and a 1 KiB chunk, with
/// every single shard of every object missing in turn.
#[test]
fn named_boundaries_with_each_shard_missing() {
    let p = FileParams { chunk_size: 1024, ..FileParams::default() };
    let c = 1024u64;
    let shard = (c + CHUNK_OVERHEAD as u64).div_ceil(4);
    for size in [0, 1, c - 1, c, c + 1, 4 * shard - 16 - 1, 4 * shard - 16 + 1, 5 * c, 17 * c + 3] {
        let mut rng = Rng(size);
        let data = rng.bytes(size as usize);
        let mut store = Store::new();
        let text = write_file(&mut store, p, &data, r#"{"name":"x"}"#, &mut rng);
        for missing in 0..p.total_shards() {
            let read = read_file(&text, &store, &mut |_, shards| shards[missing] = None);
            assert_eq!(read, Ok((data.clone(), r#"{"name":"x"}"#.to_owned())), "size {size}, shard {missing}");
        }
        let read = read_file(&text, &store, &mut |_, shards| {
            shards[0] = None;
            shards[5] = None;
            if let Some(s) = shards[2].as_mut() {
                s[0] ^= 1;
            }
        });
        if size == 0 {
            assert!(read.is_ok(), "an empty file has no shards to lose");
        } else {
            assert_eq!(read, Err(ErrorCode::Integrity), "size {size}");
        }
    }
}
