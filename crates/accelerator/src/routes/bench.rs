//! Measuring aids, mounted only with `--bench-endpoints`, so `scripts/bench` can put
//! each SDK figure beside a floor measured against the same server in the same run:
//!
//! - `GET /v1/bench/echo` — a websocket that echoes every text frame (the change
//!   feed's floor);
//! - `POST /v1/bench/sink` — reads a request body to its end and throws it away (the
//!   upload floor: loopback and HTTP, no hashing, no disk);
//! - `GET /v1/bench/source?bytes=N` — streams N bytes (the download floor).

use axum::body::{Body, Bytes};
use axum::extract::RawQuery;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};

use crate::error::ApiError;

/// The largest frame echoed; the socket closes on anything bigger.
const MAX_ECHO_BYTES: usize = 64 * 1024;
/// The most bytes one `source` request streams.
const MAX_SOURCE_BYTES: u64 = 256 * 1024 * 1024;
/// What `source` streams, a piece at a time (the same static bytes every time:
/// producing them must cost the server nothing).
static PIECE: [u8; 64 * 1024] = [0x5a; 64 * 1024];

/// `GET /v1/bench/echo`: echoes text frames until the client closes.
pub async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_ECHO_BYTES).on_upgrade(serve)
}

async fn serve(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let echo = match message {
            Message::Text(text) => Message::Text(text),
            Message::Close(_) => return,
            _ => continue,
        };
        if socket.send(echo).await.is_err() {
            return;
        }
    }
}

/// `POST /v1/bench/sink`: reads the body as it streams in, keeps none of it, and
/// answers `{"bytes": N}`. No size limit: nothing is held.
pub async fn sink(body: Body) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let mut data = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(piece) = data.next().await {
        let piece = piece.map_err(|e| ApiError::invalid(format!("the upload broke off: {e}")))?;
        bytes += piece.len() as u64;
    }
    Ok(axum::Json(serde_json::json!({ "bytes": bytes })))
}

/// `GET /v1/bench/source?bytes=N`: N bytes (at most 256 MiB), streamed in 64 KiB
/// pieces with a `Content-Length`.
pub async fn source(RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let bytes = query
        .as_deref()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("bytes=")))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n <= MAX_SOURCE_BYTES)
        .ok_or_else(|| ApiError::invalid(format!("ask for ?bytes=N with N at most {MAX_SOURCE_BYTES}")))?;
    let piece = PIECE.len() as u64;
    let pieces = stream::iter((0..bytes.div_ceil(piece)).map(move |i| {
        let len = (bytes - i * piece).min(piece) as usize;
        Ok::<_, std::io::Error>(Bytes::from_static(&PIECE[..len]))
    }));
    let headers = [
        (CONTENT_TYPE, "application/octet-stream".to_owned()),
        (CACHE_CONTROL, "no-store".to_owned()),
        (CONTENT_LENGTH, bytes.to_string()),
    ];
    Ok((headers, Body::from_stream(pieces)).into_response())
}
