//! The per-chunk stages of a file write and read, natively — the "same Rust code"
//! column of `scripts/bench` (the browser runs the same steps in wasm through
//! `src/bench.rs`). Prints one JSON object: for each stage, the median milliseconds
//! per chunk and the bytes that stage consumes.
//!
//! Large buffers here come from glibc's malloc, which by default hands each freed
//! multi-MiB buffer back to the kernel, so the next one pays a page fault per 4 KiB
//! (about half the native pipeline's time on a VM). wasm's linear memory never
//! shrinks, so to compare like with like `scripts/bench` runs this with
//! `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` raised: memory is reused.
//!
//! ```text
//! cargo run --release -p coffer-core --example bench_native [CHUNK_BYTES] [RUNS]
//! ```

use std::hint::black_box;
use std::time::Instant;

use coffer_core::chunk::{self, ChunkKey};
use coffer_core::erasure;
use coffer_core::manifest::FileParams;
use coffer_core::pipeline;
use coffer_core::proto::storage::{decode_shard_batch, encode_shard_batch};
use coffer_core::shard::ShardAddress;

/// Median milliseconds of `runs` calls of `f`, after two warm-up calls.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let chunk_bytes: usize = args.next().map_or(4 << 20, |a| a.parse().expect("CHUNK_BYTES is a number"));
    let runs: usize = args.next().map_or(15, |a| a.parse().expect("RUNS is a number"));
    let (k, m) = (4usize, 2usize);
    let params = FileParams { chunk_size: chunk_bytes as u32, data_shards: k as u8, parity_shards: m as u8 };

    // Incompressible, deterministic bytes (xorshift).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let plain: Vec<u8> = (0..chunk_bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let key = ChunkKey::from_bytes([7; 32]);
    let sealed = chunk::seal_chunk(&key, 0, &plain);
    let encoded = pipeline::encode_sealed(key.clone(), &sealed, params).expect("4 + 2 is a valid shape");
    let shards = encoded.shards;
    let addresses = encoded.chunk_ref.shards;
    let shard_bytes: usize = shards.iter().map(Vec::len).sum();
    let rebuild = || {
        let present = shards.iter().enumerate().map(|(i, s)| (i < k).then(|| s.clone())).collect();
        erasure::reconstruct(present, &addresses, k, m, sealed.len()).expect("all data shards are there")
    };

    // The data shards as the accelerator answers a batch fetch, and what the SDK
    // does with that answer (storage::shards::fetch_chunk without the network).
    let batch = encode_shard_batch(shards[..k].iter().map(|s| Some(&s[..])));
    let shard_len = erasure::shard_len(sealed.len(), k);

    // (name, bytes the stage consumes, median ms)
    let mut stages: Vec<(&str, usize, f64)> = Vec::new();
    let seal = median_ms(runs, || drop(black_box(chunk::seal_chunk(&key, 0, black_box(&plain)))));
    stages.push(("seal", plain.len(), seal));
    let open = median_ms(runs, || drop(black_box(chunk::open_chunk(&key, 0, black_box(&sealed)))));
    stages.push(("open", sealed.len(), open));
    let encode = median_ms(runs, || drop(black_box(erasure::encode(black_box(&sealed), k, m))));
    stages.push(("encode", sealed.len(), encode));
    let hash = median_ms(runs, || shards.iter().for_each(|s| _ = black_box(ShardAddress::of(black_box(s)))));
    stages.push(("hash", shard_bytes, hash));
    let write = median_ms(runs, || {
        let sealed = chunk::seal_chunk(&key, 0, black_box(&plain));
        drop(black_box(pipeline::encode_sealed(key.clone(), &sealed, params)));
    });
    stages.push(("pipeline", plain.len(), write));
    stages.push(("rebuild", sealed.len(), median_ms(runs, || drop(black_box(rebuild())))));
    let fetch_path = median_ms(runs, || {
        let mut got = decode_shard_batch(black_box(&batch), k, shard_len).expect("a well-formed batch");
        erasure::drop_bad_shards(&mut got, &addresses[..k], shard_len);
        got.extend(std::iter::repeat_n(None, m));
        drop(black_box(erasure::reconstruct(got, &addresses, k, m, sealed.len())));
    });
    stages.push(("fetchPath", sealed.len(), fetch_path));
    let read = median_ms(runs, || drop(black_box(chunk::open_chunk(&key, 0, &rebuild()))));
    stages.push(("readPipeline", plain.len(), read));

    let body: Vec<String> =
        stages.iter().map(|(name, bytes, ms)| format!("\"{name}\":{{\"ms\":{ms:.4},\"bytes\":{bytes}}}")).collect();
    println!("{{{}}}", body.join(","));
}
