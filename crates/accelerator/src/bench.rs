//! Measuring aids, mounted only with `--bench-endpoints`: a websocket that echoes
//! every text frame, so `scripts/bench` can put the change feed's delay beside the
//! bare websocket round trip to the same server.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;

/// The largest frame echoed; the socket closes on anything bigger.
const MAX_ECHO_BYTES: usize = 64 * 1024;

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
