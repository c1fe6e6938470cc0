//! The shard routes: upload one, read one, ask which are missing, read a batch.
//!
//! Shards are ciphertext addressed by their BLAKE3 hash, so reading needs no
//! session: whoever holds a manifest knows the addresses and the keys, and nobody
//! else can do anything with the bytes. Uploading needs a session (it costs disk),
//! and the body must hash to its address. Which shards stay is [`crate::gc`]'s
//! business.
//!
//! # What a request can make the accelerator hold
//!
//! - **Reads stream.** A shard is read from the store [`PIECE`] bytes at a time,
//!   each read taking one of [`crate::config::Limits::max_concurrent_shard_reads`]
//!   permits, and the next piece is read only when the socket took the last one. A
//!   client that reads nothing holds one piece and its socket buffers until the
//!   write-stall timeout closes it ([`crate::listener`]).
//! - **A batch is sized before it is sent.** `POST /v1/shards/fetch` looks up every
//!   named shard's size (once per distinct address) and refuses with `TooLarge` an
//!   answer over [`crate::config::Limits::max_fetch_bytes`] before sending a byte.
//! - **Uploads are budgeted** by [`crate::budget`] before their bodies are read.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use axum::body::{Body as ResponseBody, Bytes};
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use coffer_core::ErrorCode;
use coffer_core::proto::storage::{MAX_BATCH_ADDRESSES, SHARD_ABSENT, ShardsMissingResponse, ShardsRequest};
use coffer_core::shard::{ADDRESS_HEX_LEN, ShardAddress};
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;

use crate::error::{ApiError, Body, Json, Path};
use crate::session::Authed;
use crate::state::{AppState, now_ms};
use crate::store::keeper::Upload;
pub use crate::store::shards::PIECE;
use crate::store::shards::ShardReader;

/// Headers of every shard answer. No cache may keep a shard (a deleted file's must
/// stop being served); and should a browser ever be pointed at one, it downloads
/// opaque bytes: no sniffing a type, no rendering, no scripts.
const SHARD_HEADERS: [(HeaderName, &str); 5] = [
    (CONTENT_TYPE, "application/octet-stream"),
    (CACHE_CONTROL, "no-store"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (CONTENT_DISPOSITION, "attachment"),
    (CONTENT_SECURITY_POLICY, "default-src 'none'; sandbox"),
];

/// The longest body `POST /v1/shards/fetch` takes: [`MAX_BATCH_ADDRESSES`] quoted
/// addresses with their commas, and room for the rest.
pub const MAX_FETCH_BODY_BYTES: usize = MAX_BATCH_ADDRESSES * (ADDRESS_HEX_LEN + 3) + 1024;

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
    authed: Authed,
    Path(address): Path<ShardAddress>,
    Body(bytes): Body,
) -> Result<StatusCode, ApiError> {
    let now = now_ms();
    let upload = Upload {
        user_id: authed.session.user_id,
        address,
        now_ms: now,
        expires_at_ms: now.saturating_add(grace_ms(&state)),
        allowance: state.config.user_allowance_bytes,
    };
    // Hashing up to 16 MiB takes milliseconds: done off the async threads.
    let hashed = bytes.clone();
    let matches = tokio::task::spawn_blocking(move || address.matches(&hashed)).await.map_err(ApiError::internal)?;
    if !matches {
        return Err(ApiError::new(
            ErrorCode::Integrity,
            "the body does not hash to the shard's address (BLAKE3); nothing was stored",
        ));
    }
    // Runs to the end even if the client goes: a put cut off between the bytes
    // landing and their record would leave bytes no collector pass knows of.
    let keeper = Arc::clone(&state.keeper);
    tokio::spawn(async move { keeper.store(&upload, bytes).await }).await.map_err(ApiError::internal)??;
    Ok(StatusCode::NO_CONTENT)
}

/// A stored shard's bytes as a stream of pieces, each read under a permit of
/// `reads`.
fn pieces(reader: ShardReader, reads: Arc<Semaphore>) -> impl futures_util::Stream<Item = io::Result<Bytes>> {
    stream::try_unfold(reader.bytes, move |mut bytes| {
        let reads = Arc::clone(&reads);
        async move {
            let _permit = reads.acquire_owned().await.map_err(io::Error::other)?;
            Ok(bytes.try_next().await?.map(|piece| (piece, bytes)))
        }
    })
}

/// Opens a shard.
async fn open(state: &AppState, address: ShardAddress) -> io::Result<Option<ShardReader>> {
    state.keeper.shards.open(&address).await
}

/// `GET /v1/shards/{address}`: the shard's bytes, to anyone, streamed.
pub async fn get(State(state): State<AppState>, Path(address): Path<ShardAddress>) -> Result<Response, ApiError> {
    let Some(reader) = open(&state, address).await.map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(
            "no shard is stored at that address: never uploaded, or freed when its file was deleted",
        ));
    };
    let len = reader.len;
    let body = ResponseBody::from_stream(pieces(reader, Arc::clone(&state.shard_reads)));
    Ok((SHARD_HEADERS, [(CONTENT_LENGTH, len.to_string())], body).into_response())
}

/// The grace period in milliseconds.
fn grace_ms(state: &AppState) -> u64 {
    u64::try_from(state.config.shard_grace.as_millis()).unwrap_or(u64::MAX)
}

/// `POST /v1/shards/missing`: which of the named shards the caller must upload
/// before committing: all but their own uploads not yet committed, whose deadlines
/// this moves a grace period on.
pub async fn missing(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<ShardsRequest>,
) -> Result<Json<ShardsMissingResponse>, ApiError> {
    batch_size(&req.addresses)?;
    let grace_ms = grace_ms(&state);
    let expires_at_ms = now_ms().saturating_add(grace_ms);
    let user_id = authed.session.user_id;
    let present = state.keeper.present(&user_id, &req.addresses, expires_at_ms).await?;
    let missing = req.addresses.iter().zip(present).filter(|(_, present)| !present).map(|(a, _)| *a).collect();
    Ok(Json(ShardsMissingResponse { missing, grace_ms }))
}

/// The bytes a batch answer takes: each named shard's frame, repeats included.
/// Looks each distinct shard's size up once.
async fn batch_bytes(state: &AppState, addresses: &[ShardAddress]) -> Result<u64, ApiError> {
    let mut sizes: HashMap<ShardAddress, u64> = HashMap::new();
    let mut total = 0u64;
    for address in addresses {
        let size = match sizes.get(address) {
            Some(&size) => size,
            None => {
                let size = state.keeper.shards.size(address).await.map_err(ApiError::internal)?.unwrap_or(0);
                sizes.insert(*address, size);
                size
            }
        };
        total = total.saturating_add(4 + size);
    }
    Ok(total)
}

/// `POST /v1/shards/fetch`: the named shards in order, each as a 4-byte big-endian
/// length and its bytes, or [`SHARD_ABSENT`] alone. Sized first, then streamed piece
/// by piece.
pub async fn fetch(State(state): State<AppState>, Json(req): Json<ShardsRequest>) -> Result<Response, ApiError> {
    batch_size(&req.addresses)?;
    let limit = state.config.limits.max_fetch_bytes;
    let total = batch_bytes(&state, &req.addresses).await?;
    if total > limit {
        return Err(ApiError::too_large(format!(
            "these shards add up to {total} bytes; one request answers at most {limit}: ask for fewer at a time"
        )));
    }
    let frames = stream::iter(req.addresses)
        .then(move |address| {
            let state = state.clone();
            async move {
                let frame = match open(&state, address).await? {
                    Some(reader) if u32::try_from(reader.len).is_ok_and(|n| n != SHARD_ABSENT) => {
                        let len = Bytes::copy_from_slice(&(reader.len as u32).to_be_bytes());
                        stream::once(async { Ok(len) }).chain(pieces(reader, Arc::clone(&state.shard_reads))).boxed()
                    }
                    _ => stream::once(async { Ok(Bytes::copy_from_slice(&SHARD_ABSENT.to_be_bytes())) }).boxed(),
                };
                Ok::<_, io::Error>(frame)
            }
        })
        .try_flatten();
    Ok((SHARD_HEADERS, ResponseBody::from_stream(frames)).into_response())
}
