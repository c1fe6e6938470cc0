//! One chunk end to end, the same code on the page and in a worker: seal a slice of
//! the file under a fresh key, erasure-code it and upload its shards (writing);
//! fetch its shards, rebuild and open it (reading).

use coffer_core::chunk::{ChunkKey, ChunkPos};
use coffer_core::manifest::{ChunkRef, FileParams};
use coffer_core::pipeline;
use js_sys::Uint8Array;
use web_sys::AbortSignal;

use super::cipher::{self, Engine};
use super::shards::{self, check_abort};
use super::source::Part;
use crate::copies;
use crate::error::SdkResult;
use crate::http::Http;
use crate::{random, timer};

/// What to store: a part of the file (or a table node's plaintext) at `pos`.
pub struct StoreChunk {
    /// Where it sits in the file's chunk tree (bound into the seal).
    pub pos: ChunkPos,
    /// How the file is cut and coded.
    pub params: FileParams,
    /// The plaintext, not yet read.
    pub part: Part,
}

/// What to fetch: the chunk at `pos`, as the manifest (or a table node) lists it.
pub struct LoadChunk {
    /// Its position (bound into the seal).
    pub pos: ChunkPos,
    /// How the file is cut and coded.
    pub params: FileParams,
    /// Its key and shard addresses.
    pub chunk_ref: ChunkRef,
    /// What its shards rebuild.
    pub sealed_len: usize,
}

/// Reads, seals, erasure-codes and uploads one chunk or table node; returns its ref.
///
/// The sealed bytes are copied into wasm memory once, where the parity shards are
/// computed beside them and every shard is hashed; each data shard then uploads as a
/// view of the sealed JS buffer, and only the parity shards (and a zero-padded last
/// data shard) are copied back out.
pub async fn store(http: &Http, engine: Engine, job: StoreChunk, signal: Option<&AbortSignal>) -> SdkResult<ChunkRef> {
    check_abort(signal)?;
    let plaintext = job.part.read().await?;
    check_abort(signal)?;
    let key = ChunkKey::from_bytes(random::bytes());
    let sealed = cipher::seal(engine, &key, job.pos, &plaintext).await?;
    drop(plaintext);
    timer::yield_now().await;
    let len = sealed.length() as usize;
    let striped = pipeline::encode_sealed_with(key, len, job.params, |buffer| sealed.copy_to(buffer))?;
    copies::copied(len);
    let shard_len = striped.stripes.shard_len();
    let bodies: Vec<Uint8Array> = (0..job.params.total_shards())
        .map(|i| {
            let (start, end) = (i * shard_len, (i + 1) * shard_len);
            if end <= len {
                sealed.subarray(start as u32, end as u32)
            } else {
                copies::copied(shard_len);
                Uint8Array::from(striped.stripes.shard(i))
            }
        })
        .collect();
    drop(striped.stripes);
    shards::upload(http, &striped.chunk_ref.shards, &bodies, signal).await?;
    Ok(striped.chunk_ref)
}

/// Fetches, checks, rebuilds and opens one chunk or table node; returns its plaintext.
pub async fn load(http: &Http, engine: Engine, job: LoadChunk, signal: Option<&AbortSignal>) -> SdkResult<Uint8Array> {
    check_abort(signal)?;
    let sealed = shards::fetch_chunk(http, &job.chunk_ref, job.params, job.sealed_len, signal).await?;
    timer::yield_now().await;
    cipher::open(engine, &job.chunk_ref.key, job.pos, &sealed).await
}
