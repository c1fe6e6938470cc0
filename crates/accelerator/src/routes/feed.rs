//! The change feed: `GET /v1/kv/feed`, a websocket that streams a user's kv changes
//! in sequence order, resuming from the client's last seen sequence number.
//!
//! # How no change is lost, duplicated or reordered
//!
//! The database is the only source of events. Each socket remembers `last`, the
//! sequence number of the last change it sent, and the only thing it ever does is
//! "read the log after `last`, send it, advance `last`" ([`Feed::pump`]). The
//! [`crate::hub::FeedHub`] carries no data: a write commits, *then* wakes the user's sockets,
//! and a woken socket pumps. A socket subscribes to the hub *before* its first read
//! of the log, so a change that commits during the replay either is in that read or
//! wakes the socket afterwards. Wake-ups may coalesce or be spurious; neither
//! matters, because each pump reads everything after `last`.
//!
//! The log keeps only the latest change of each key, so sequence numbers sent have
//! holes where a later change replaced one; a client that applies what it is sent
//! ends in the same state. If the log may no longer hold every change after `last`
//! (`last` is below its floor, see [`crate::Config::change_log_retain`]), or `last`
//! is past the head, the socket sends `Resync { seq: head }` and carries on from the
//! head.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use coffer_core::ErrorCode;
use coffer_core::proto::{ClientFrame, ServerFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::MissedTickBehavior;

use crate::error::ApiError;
use crate::session::Authed;
use crate::state::{AppState, now_ms};

/// Changes read from the log per query; bounds the memory one pump holds.
const BATCH: usize = 64;
/// Largest frame a client may send (the `auth` frame is well under 1 KiB).
const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// Close code for a refused or revoked session (RFC 6455 "policy violation").
const CLOSE_POLICY: u16 = 1008;
/// Close code when the accelerator shuts down ("going away").
const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code after an internal failure.
const CLOSE_INTERNAL: u16 = 1011;

/// `GET /v1/kv/feed`: upgrades to the feed websocket.
pub async fn upgrade(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::invalid("this route is a websocket: connect with `new WebSocket(url)`").into_response();
        }
    };
    // Held until the socket authenticates (or closes): strangers can keep only so
    // many sockets open at once.
    let Ok(unauthenticated) = Arc::clone(&state.unauthenticated_sockets).try_acquire_owned() else {
        return ApiError::rate_limited(
            "too many feed sockets are waiting to authenticate; try again shortly",
            Duration::from_secs(1),
        )
        .into_response();
    };
    // The frame limit too: a message limit alone lets a client send one huge frame.
    ws.max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| serve_socket(state, socket, unauthenticated))
        .into_response()
}

/// Why a feed stops.
enum End {
    /// The peer left or the connection broke: nothing more to send.
    Gone,
    /// Tell the client why, then close with this code.
    Error(ApiError, u16),
}

impl From<ApiError> for End {
    fn from(err: ApiError) -> Self {
        End::Error(err, CLOSE_INTERNAL)
    }
}

impl From<crate::store::StoreError> for End {
    fn from(err: crate::store::StoreError) -> Self {
        End::from(ApiError::from(err))
    }
}

async fn serve_socket(state: AppState, socket: WebSocket, unauthenticated: OwnedSemaphorePermit) {
    // Keeps `run` waiting until this feed has closed.
    let _alive = state.feed_alive.clone();
    let (sink, stream) = socket.split();
    let mut feed = Feed { state, sink, stream, last: 0, unauthenticated: Some(unauthenticated) };
    let end = feed.run().await;
    if let End::Error(err, code) = end {
        let _ = feed.send(&ServerFrame::Error(err.body())).await;
        let frame = CloseFrame { code, reason: err.code.as_str().into() };
        let _ = feed.sink.send(Message::Close(Some(frame))).await;
    }
}

/// One open feed websocket.
struct Feed {
    /// For records, the hub, limits and the shutdown signal.
    state: AppState,
    /// Frames to the client.
    sink: SplitSink<WebSocket, Message>,
    /// Frames from the client: the `auth` frame, then only closes and pongs.
    stream: SplitStream<WebSocket>,
    /// The sequence number of the last change sent (or the point resumed from).
    last: u64,
    /// A place among the sockets waiting to authenticate, given back on auth.
    unauthenticated: Option<OwnedSemaphorePermit>,
}

impl Feed {
    async fn run(&mut self) -> End {
        let mut shutdown = self.state.shutdown.clone();
        let timeout = self.state.config.feed_auth_timeout;
        let first = tokio::select! {
            first = tokio::time::timeout(timeout, self.auth_frame()) => first,
            _ = stopping(&mut shutdown) => return going_away(),
        };
        let (token, since) = match first {
            Ok(Ok(Some(auth))) => auth,
            Ok(Ok(None)) => return End::Gone,
            Ok(Err(err)) => return End::Error(err, CLOSE_POLICY),
            Err(_) => {
                let err = ApiError::new(ErrorCode::Unauthorized, "send the auth frame first, within a few seconds");
                return End::Error(err, CLOSE_POLICY);
            }
        };
        match self.serve(&token, since, &mut shutdown).await {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    /// Reads frames until the first data frame, which must be `auth`.
    /// `Ok(None)` if the client left first.
    async fn auth_frame(&mut self) -> Result<Option<(String, Option<u64>)>, ApiError> {
        let refused =
            || ApiError::new(ErrorCode::Unauthorized, "the first frame must be {\"type\":\"auth\",\"token\":…}");
        loop {
            let text = match self.stream.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Binary(_))) => return Err(refused()),
            };
            return match serde_json::from_str::<ClientFrame>(&text) {
                Ok(ClientFrame::Auth { token, since }) => Ok(Some((token, since))),
                Err(_) => Err(refused()),
            };
        }
    }

    async fn serve(
        &mut self,
        token: &str,
        since: Option<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<std::convert::Infallible, End> {
        let authed = Authed::from_token(&self.state, token).await.map_err(|e| End::Error(e, CLOSE_POLICY))?;
        self.unauthenticated = None;
        let user_id = authed.session.user_id;
        let token_hash = authed.token_hash;

        // Subscribe before the first read of the log: see the module docs.
        let cap = self.state.config.limits.max_feeds_per_user;
        let Some(mut subscription) = self.state.feed.subscribe(&user_id, cap) else {
            let err = ApiError::rate_limited(
                format!("this account has {cap} change feeds open already; close one (another tab or device)"),
                Duration::from_secs(5),
            );
            return Err(End::Error(err, CLOSE_POLICY));
        };
        // Nothing is after `u64::MAX`: this reads just the head.
        let head = self.state.records.changes_after(&user_id, u64::MAX, 0).await?.head;
        self.send(&ServerFrame::Ready { seq: head }).await?;
        self.last = since.unwrap_or(head);
        self.pump(&user_id).await?;

        let period = self.state.config.feed_ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopping(shutdown) => return Err(going_away()),
                _ = subscription.woken() => {
                    self.check_session(token_hash).await?;
                    self.pump(&user_id).await?;
                }
                _ = ping.tick() => {
                    self.check_session(token_hash).await?;
                    self.sink.send(Message::Ping(Default::default())).await.map_err(|_| End::Gone)?;
                }
                incoming = self.stream.next() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Err(End::Gone),
                    // Pongs, and frames a later protocol version may add.
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Sends every change after `last`, in order; `Resync` if the log has a gap.
    async fn pump(&mut self, user_id: &str) -> Result<(), End> {
        loop {
            let window = self.state.records.changes_after(user_id, self.last, BATCH).await?;
            // Holes above the floor are changes a later change of the same key
            // replaced; below it the log may have been pruned.
            let gap = self.last < window.floor || self.last > window.head;
            if gap {
                self.send(&ServerFrame::Resync { seq: window.head }).await?;
                self.last = window.head;
                return Ok(());
            }
            let Some(newest) = window.changes.last().map(|c| c.seq) else { return Ok(()) };
            for change in &window.changes {
                self.send(&ServerFrame::Change(change.into())).await?;
            }
            self.last = newest;
            if self.last >= window.head {
                return Ok(());
            }
        }
    }

    async fn check_session(&self, token_hash: [u8; 32]) -> Result<(), End> {
        let now = now_ms();
        let session = self.state.records.session(&token_hash, now).await?;
        match session {
            Some(_) => Ok(()),
            None => Err(End::Error(
                ApiError::new(ErrorCode::Unauthorized, "the session was signed out or expired; sign in again"),
                CLOSE_POLICY,
            )),
        }
    }

    async fn send(&mut self, frame: &ServerFrame) -> Result<(), End> {
        let text = serde_json::to_string(frame).map_err(|e| End::from(ApiError::internal(e)))?;
        self.sink.send(Message::Text(text.into())).await.map_err(|_| End::Gone)
    }
}

/// Completes once the server starts shutting down.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here, not in a select.
    let _ = shutdown.wait_for(|stopping| *stopping).await.map(|_| ());
}

fn going_away() -> End {
    End::Error(
        ApiError::new(ErrorCode::Network, "the accelerator is shutting down; reconnect shortly"),
        CLOSE_GOING_AWAY,
    )
}
