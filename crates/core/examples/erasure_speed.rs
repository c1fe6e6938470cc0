//! Erasure-encoding throughput, the core's own code against `reed-solomon-erasure`
//! 6, the crate it replaced: `cargo run --release -p coffer-core --example
//! erasure_speed`. Both copy the input into zeroed shards and add the parity, as
//! `erasure::encode_with` does; MB/s of input, best of a few runs.
//!
//! On the 2-core development VM when the crate was replaced: core 4258–4445 MB/s
//! (SSSE3 kernel), crate 1517–1528 MB/s. In wasm (SIMD128 kernel, Node 20, the
//! `bench` build's `BenchChunk.encode` on 4 MiB + 16 bytes): 2265 MB/s against the
//! crate's 836.

use std::hint::black_box;
use std::time::{Duration, Instant};

use coffer_core::erasure;
use reed_solomon_erasure::galois_8::ReedSolomon;

const DATA: usize = 4;
const PARITY: usize = 2;
const LEN: usize = 4 * 1024 * 1024 + 16;
const RUNS: usize = 10;

fn main() {
    let input: Vec<u8> = (0..LEN as u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let core = best(|| {
        let stripes = erasure::encode_with(LEN, DATA, PARITY, |buffer| buffer.copy_from_slice(&input)).unwrap();
        black_box(stripes.shard(DATA)[0]);
    });
    let rs = ReedSolomon::new(DATA, PARITY).unwrap();
    let with_crate = best(|| {
        let shard_len = erasure::shard_len(LEN, DATA);
        let mut bytes = vec![0u8; (DATA + PARITY) * shard_len];
        bytes[..LEN].copy_from_slice(&input);
        let mut shards: Vec<&mut [u8]> = bytes.chunks_exact_mut(shard_len).collect();
        rs.encode(&mut shards).unwrap();
        black_box(bytes[DATA * shard_len]);
    });
    println!("encode {DATA} + {PARITY}, {LEN} bytes, best of {RUNS}:");
    println!("  coffer-core           {:7.0} MB/s", mb_per_s(core));
    println!("  reed-solomon-erasure  {:7.0} MB/s", mb_per_s(with_crate));
}

fn best(mut run: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn mb_per_s(time: Duration) -> f64 {
    LEN as f64 / time.as_secs_f64() / 1e6
}
