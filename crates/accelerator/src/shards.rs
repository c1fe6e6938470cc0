//! The shard routes: upload one, read one, ask which are missing, read a batch.
//!
//! Shards are ciphertext addressed by their BLAKE3 hash, so reading needs no
//! session: whoever holds a manifest knows the addresses and the keys, and nobody
//! else can do anything with the bytes. Uploading needs a session (it costs disk),
//! and the body must hash to its address. Which shards stay is [`crate::gc`]'s
//! business.

use std::io;

use axum::body::{Body as ResponseBody, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use coffer_core::ErrorCode;
use coffer_core::proto::storage::{MAX_BATCH_ADDRESSES, SHARD_ABSENT, ShardsMissingResponse, ShardsRequest};
use coffer_core::shard::ShardAddress;
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::auth::Authed;
use crate::error::{ApiError, Body, Json, Path};
use crate::server::{AppState, now_ms};

/// Headers of every shard answer. A deleted file's shards must stop being served,
/// so no cache may keep them.
const SHARD_HEADERS: [(axum::http::HeaderName, &str); 2] =
    [(CONTENT_TYPE, "application/octet-stream"), (CACHE_CONTROL, "no-store")];

fn batch_size(addresses: &[ShardAddress]) -> Result<(), ApiError> {
    if addresses.len() > MAX_BATCH_ADDRESSES {
        return Err(ApiError::too_large(format!(
            "{} addresses in one request; the limit is {MAX_BATCH_ADDRESSES}: split the list",
            addresses.len()
        )));
    }
    Ok(())
}

/// `PUT /v1/shards/{address}`: 204 once the shard is durable; `Integrity` (and
/// nothing stored) if the body does not hash to the address. Idempotent.
pub async fn put(
    State(state): State<AppState>,
    _authed: Authed,
    Path(address): Path<ShardAddress>,
    Body(bytes): Body,
) -> Result<StatusCode, ApiError> {
    state
        .keeper(move |keeper| {
            // Hashing up to 16 MiB takes milliseconds: done here, off the async threads.
            if !address.matches(&bytes) {
                return Err(ApiError::new(
                    ErrorCode::Integrity,
                    "the body does not hash to the shard's address (BLAKE3); nothing was stored",
                ));
            }
            keeper.store(&address, &bytes, now_ms())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/shards/{address}`: the shard's bytes, to anyone.
pub async fn get(State(state): State<AppState>, Path(address): Path<ShardAddress>) -> Result<Response, ApiError> {
    let bytes = state.keeper(move |keeper| keeper.shards.get(&address).map_err(ApiError::internal)).await?;
    match bytes {
        Some(bytes) => Ok((SHARD_HEADERS, bytes).into_response()),
        None => Err(ApiError::not_found(
            "no shard is stored at that address: never uploaded, or freed when its file was deleted",
        )),
    }
}

/// `POST /v1/shards/missing`: which of the named shards to upload before committing.
pub async fn missing(
    State(state): State<AppState>,
    _authed: Authed,
    Json(req): Json<ShardsRequest>,
) -> Result<Json<ShardsMissingResponse>, ApiError> {
    batch_size(&req.addresses)?;
    let missing = state
        .keeper(move |keeper| {
            let present = keeper.present(&req.addresses, now_ms())?;
            Ok(req.addresses.iter().zip(present).filter(|(_, present)| !present).map(|(a, _)| *a).collect())
        })
        .await?;
    Ok(Json(ShardsMissingResponse { missing }))
}

/// `POST /v1/shards/fetch`: the named shards in order, each as a 4-byte big-endian
/// length and its bytes, or [`SHARD_ABSENT`] alone. Streamed: one shard is in
/// memory at a time, whatever the batch adds up to.
pub async fn fetch(State(state): State<AppState>, Json(req): Json<ShardsRequest>) -> Result<Response, ApiError> {
    batch_size(&req.addresses)?;
    let keeper = state.shard_keeper();
    let frames = stream::iter(req.addresses)
        .then(move |address| {
            let keeper = keeper.clone();
            async move {
                let shard = tokio::task::spawn_blocking(move || keeper.shards.get(&address))
                    .await
                    .map_err(io::Error::other)??;
                Ok::<_, io::Error>(stream::iter(frame(shard).into_iter().map(Ok::<_, io::Error>)))
            }
        })
        .try_flatten();
    Ok((SHARD_HEADERS, ResponseBody::from_stream(frames)).into_response())
}

/// One shard's part of a batch answer: its length and bytes, or the absent marker.
fn frame(shard: Option<Vec<u8>>) -> Vec<Bytes> {
    match shard.and_then(|bytes| Some((u32::try_from(bytes.len()).ok().filter(|&n| n != SHARD_ABSENT)?, bytes))) {
        Some((len, bytes)) => vec![Bytes::copy_from_slice(&len.to_be_bytes()), Bytes::from(bytes)],
        None => vec![Bytes::copy_from_slice(&SHARD_ABSENT.to_be_bytes())],
    }
}
