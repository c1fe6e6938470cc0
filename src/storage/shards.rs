//! Moving shards: parallel uploads retried with backoff, and reads that fetch the
//! data shards first, check every shard against its address and fetch parity only
//! when something is missing or bad.

use coffer_core::ErrorCode;
use coffer_core::erasure::{self, ErasureError};
use coffer_core::manifest::{ChunkRef, FileParams};
use coffer_core::proto::storage::{ShardBatch, ShardBatchDecoder, ShardsRequest};
use coffer_core::shard::ShardAddress;
use futures_util::future::try_join_all;
use js_sys::Uint8Array;
use web_sys::AbortSignal;

use crate::error::{SdkError, SdkResult};
use crate::http::Http;
use crate::timer;

/// Attempts per request before a network failure is reported.
const ATTEMPTS: u32 = 6;

/// `Aborted` once `signal` has fired.
pub(super) fn check_abort(signal: Option<&AbortSignal>) -> SdkResult<()> {
    if signal.is_some_and(AbortSignal::aborted) { Err(SdkError::aborted()) } else { Ok(()) }
}

/// The longest `Retry-After` a retry waits out; a longer one is reported instead.
const MAX_RETRY_AFTER_MS: u32 = 60_000;

/// Runs `request` until it succeeds, fails for good, or `ATTEMPTS` run out;
/// network errors, 5xx answers and `RateLimited` are retried with exponential
/// backoff and jitter, never sooner than the accelerator's `Retry-After` asks (one
/// over a minute is reported rather than waited out).
pub async fn with_retry<T, F, Fut>(signal: Option<&AbortSignal>, mut request: F) -> SdkResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = SdkResult<T>>,
{
    let mut attempt = 0;
    loop {
        check_abort(signal)?;
        match request().await {
            Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                let asked = e.retry_after_ms.unwrap_or(0);
                if asked > MAX_RETRY_AFTER_MS {
                    return Err(e);
                }
                timer::sleep(timer::backoff_ms(attempt, 200.0, 5_000.0).max(asked)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Uploads every shard of a chunk in parallel.
pub async fn upload(
    http: &Http,
    addresses: &[ShardAddress],
    shards: &[Uint8Array],
    signal: Option<&AbortSignal>,
) -> SdkResult<()> {
    try_join_all(addresses.iter().zip(shards).map(|(address, shard)| async move {
        let path = format!("/v1/shards/{address}");
        with_retry(signal, || http.put_bytes(&path, shard, signal)).await
    }))
    .await
    .map(drop)
}

/// Fetches shards that are each `shard_len` bytes (known from the manifest), reading
/// the answer as it arrives: a length prefix over `shard_len` or a byte past the last
/// shard fails with `Integrity` before anything more is read or allocated.
async fn fetch_batch(
    http: &Http,
    addresses: &[ShardAddress],
    shard_len: usize,
    signal: Option<&AbortSignal>,
) -> SdkResult<ShardBatch> {
    let request = ShardsRequest { addresses: addresses.to_vec() };
    with_retry(signal, || async {
        let mut batch = ShardBatchDecoder::new(addresses.len(), shard_len);
        http.post_into("/v1/shards/fetch", &request, &mut batch, signal).await?;
        Ok(batch.finish_batch()?)
    })
    .await
}

/// Fetches and rebuilds one sealed chunk (or table node) of `sealed_len` bytes.
///
/// The common case costs one request, one hash of each data shard and no copy: the
/// data shards arrive back to back in one buffer, and when each is whole and matches
/// its address that buffer is the sealed chunk. Otherwise the parity shards are
/// fetched too and the chunk is rebuilt. Fails with `Integrity` (or `NotFound` when no shard is left at all)
/// when fewer than `k` good shards exist — never with wrong bytes.
pub async fn fetch_chunk(
    http: &Http,
    chunk_ref: &ChunkRef,
    params: FileParams,
    sealed_len: usize,
    signal: Option<&AbortSignal>,
) -> SdkResult<Vec<u8>> {
    let (k, m) = (params.data(), params.parity());
    let shard_len = erasure::shard_len(sealed_len, k);
    let batch = fetch_batch(http, &chunk_ref.shards[..k], shard_len, signal).await?;
    timer::yield_now().await;
    // Whole, matching data shards are the sealed chunk already, joined in one buffer.
    let batch = match batch.into_sealed(&chunk_ref.shards[..k], sealed_len) {
        Ok(sealed) => return Ok(sealed),
        Err(batch) => batch,
    };
    let mut shards = batch.into_shards();
    shards.extend(std::iter::repeat_n(None, m));
    match erasure::reconstruct(shards, &chunk_ref.shards, k, m, sealed_len) {
        Ok(sealed) => return Ok(sealed),
        Err(ErasureError::TooFewShards { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let shards = fetch_batch(http, &chunk_ref.shards, shard_len, signal).await?.into_shards();
    timer::yield_now().await;
    if shards.iter().all(Option::is_none) {
        return Err(SdkError::new(
            ErrorCode::NotFound,
            "none of this file's shards are on the accelerator: it was deleted, or never finished uploading",
        ));
    }
    erasure::reconstruct(shards, &chunk_ref.shards, k, m, sealed_len).map_err(|e| {
        SdkError::new(
            ErrorCode::Integrity,
            format!("{e}: too many shards of this file are missing or damaged to rebuild it"),
        )
    })
}
