//! The change feed: one websocket per signed-in client (gloo-net's futures
//! `WebSocket`), authenticated in its first frame, resumed from the last sequence
//! number after any disconnect.
//!
//! Reconnects forever with exponential backoff (250 ms doubling to 30 s) and jitter
//! (each delay drawn from its upper half). A change is delivered once, in order:
//! anything at or below the last delivered sequence is a duplicate and is skipped.
//! Sequence numbers may skip: the accelerator's log keeps only the latest change of
//! each key (SPEC.md §7.3), and a pruned log is announced by `resync`.
//!
//! The clients of one account on one origin (its tabs) share one socket (SPEC.md
//! D.4, [`shared`]): the one holding the account's feed lock leads — it connects,
//! and passes each `change` and `resync` frame to the others over the account's
//! channel — and the rest read those frames as if from a socket of their own. Each
//! client delivers by its own last sequence number, so each listener gets each
//! change once.

mod shared;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use coffer_core::ErrorCode;
use coffer_core::kv::KvScope;
use coffer_core::proto::{ChangeEvent, ChangeOp, ClientFrame, ServerFrame};
use coffer_core::tabs::{Follower, Leader};
use coffer_core::validate::RESERVED_PREFIX;
use futures_util::future::{AbortHandle, AbortRegistration, Abortable, poll_fn};
use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, State};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::error::SdkError;
use crate::events::{EventKind, Events};
use crate::http::Http;
use crate::js::{self, to_js};
use crate::offline::Offline;
use crate::session::User;
use crate::tabs::{Lease, Tabs};
use crate::{json, kv, timer};

/// First retry delay.
const BACKOFF_START_MS: f64 = 250.0;
/// Longest retry delay.
const BACKOFF_MAX_MS: f64 = 30_000.0;

/// A `change` event (`KvChangeEvent` in types.d.ts).
#[derive(Serialize)]
struct ChangeView<'a> {
    collection: &'a str,
    id: &'a str,
    seq: f64,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The value as `JSON.parse` gives it back (exact JSON, see json.rs); `null` for
    /// a delete or a value that failed authentication.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    data: JsValue,
    /// The `CofferError`, present only when the value failed authentication.
    #[serde(with = "serde_wasm_bindgen::preserve", skip_serializing_if = "JsValue::is_undefined")]
    error: JsValue,
    /// Present (`true`) when the change overwrote a write this device queued offline.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    overwritten: bool,
}

/// A `resync` event (`KvResyncEvent`).
#[derive(Serialize)]
struct ResyncView {
    seq: f64,
}

/// What a feed reads of its client, and the client itself, held so an app that
/// keeps only its listener still gets events (the client holds the feed in turn;
/// `stop` breaks the cycle).
struct Parts {
    http: Rc<Http>,
    events: Rc<Events>,
    user: Rc<User>,
    offline: Option<Rc<Offline>>,
    _client: Rc<dyn std::any::Any>,
}

/// One client's change feed.
///
/// While it runs it holds what it reads of its client (the connection, the
/// listeners, the user's keys): an app that keeps only the listener (and lets the
/// `Client` object go) still gets its events. `stop` lets go, so a signed-out client,
/// or one whose last listener was removed, can be collected.
pub struct Feed {
    /// What the feed reads of its client, held until `stop`.
    parts: RefCell<Option<Rc<Parts>>>,
    /// The last sequence number delivered (or skipped as the SDK's own).
    last_seq: Cell<u64>,
    /// Ends the connect–read–retry loop; its socket closes as the loop is dropped.
    halt: AbortHandle,
    /// The loop's half of `halt`, until this client connects (it may never lead).
    registration: RefCell<Option<AbortRegistration>>,
    /// The account's channel to its other clients here, where the page has one.
    tabs: Option<Rc<Tabs>>,
    /// The account's feed lock, held or waited for.
    lease: RefCell<Option<Lease>>,
    /// Whether this client holds the socket (and passes its frames on).
    leading: Cell<bool>,
    /// Frames held while this client's `hello` is unanswered.
    follower: RefCell<Follower>,
    /// The clients behind this one, while it leads.
    leader: RefCell<Leader>,
    /// Whether a reconnect to replay for them is about to happen.
    rewinding: Cell<bool>,
    /// Ends the current connection, so the loop connects again at once.
    connection: RefCell<Option<AbortHandle>>,
}

/// What the loop does after a frame.
enum Flow {
    /// Keep reading.
    Read,
    /// The accelerator accepted the session: the backoff starts over.
    Ready,
    /// Drop this connection and connect again after a backoff.
    Reconnect,
    /// Stop for good.
    Stop,
}

impl Feed {
    /// Starts a feed for `user` that delivers changes after `since` to `events`:
    /// connecting at once where it is alone, else when it is elected over `tabs`.
    pub fn start(
        client: Rc<dyn std::any::Any>,
        http: Rc<Http>,
        events: Rc<Events>,
        user: Rc<User>,
        tabs: Option<Rc<Tabs>>,
        offline: Option<Rc<Offline>>,
        since: u64,
    ) -> Rc<Feed> {
        let (halt, registration) = AbortHandle::new_pair();
        let feed = Rc::new(Feed {
            parts: RefCell::new(Some(Rc::new(Parts { http, events, user, offline, _client: client }))),
            last_seq: Cell::new(since),
            halt,
            registration: RefCell::new(Some(registration)),
            tabs: tabs.filter(|tabs| tabs.shared()),
            lease: RefCell::new(None),
            leading: Cell::new(false),
            follower: RefCell::new(Follower::default()),
            leader: RefCell::new(Leader::default()),
            rewinding: Cell::new(false),
            connection: RefCell::new(None),
        });
        match feed.tabs.clone() {
            None => feed.connect(),
            Some(tabs) => feed.join(&tabs),
        }
        feed
    }

    /// Starts the connect–read–retry loop (once).
    fn connect(self: &Rc<Self>) {
        let Some(registration) = self.registration.borrow_mut().take() else { return };
        // The loop holds the feed weakly: the session owns it.
        let running = Abortable::new(run(Rc::downgrade(self)), registration);
        spawn_local(async move {
            let _ = running.await;
        });
    }

    /// The client's parts, while the feed runs.
    fn parts(&self) -> Option<Rc<Parts>> {
        self.parts.borrow().clone()
    }

    /// The last sequence number delivered, to resume from later.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.get()
    }

    /// Closes the socket for good, hands the lead on and lets go of the client.
    pub fn stop(&self) {
        self.halt.abort();
        self.leading.set(false);
        self.lease.borrow_mut().take();
        let parts = self.parts.borrow_mut().take();
        drop(parts);
    }

    /// Where the next connection starts: this client's position, or, leading,
    /// where the earliest client behind it is.
    fn connect_from(&self) -> u64 {
        let last = self.last_seq.get();
        if self.leading.get() { self.leader.borrow_mut().connect_from(last) } else { last }
    }

    /// Reads one text frame.
    fn on_message(&self, text: &str) -> Flow {
        let frame: ServerFrame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(_) => {
                js::warn("coffer: unreadable frame on the change feed; reconnecting");
                return Flow::Reconnect;
            }
        };
        match frame {
            ServerFrame::Ready { seq } => {
                if let Some(offline) = self.parts().and_then(|parts| parts.offline.clone()) {
                    offline.went_online();
                }
                self.answer(|leader| leader.ready(seq));
                return Flow::Ready;
            }
            ServerFrame::Change(change) => {
                let seq = change.seq;
                self.relay(text);
                self.on_change(change);
                self.answer(|leader| leader.change(seq));
            }
            ServerFrame::Resync { seq } => {
                self.relay(text);
                self.on_resync(seq);
                self.answer(Leader::resync);
            }
            ServerFrame::Error(body) => {
                js::warn(&format!("coffer: the change feed stopped: {} ({})", body.message, body.code));
                return if body.code == ErrorCode::Unauthorized { Flow::Stop } else { Flow::Reconnect };
            }
        }
        Flow::Read
    }

    fn on_resync(&self, seq: u64) {
        // A client already at the head missed nothing (a resync another client's
        // replay caused); any other position, below or above, starts over.
        if seq == self.last_seq.get() {
            return;
        }
        self.last_seq.set(seq);
        if let Some(parts) = self.parts() {
            if let Some(offline) = &parts.offline {
                offline.on_resync();
            }
            parts.events.emit(EventKind::Resync, to_js(&ResyncView { seq: seq as f64 }));
        }
    }

    fn on_change(&self, mut change: ChangeEvent) {
        let last = self.last_seq.get();
        if change.seq <= last {
            return;
        }
        self.last_seq.set(change.seq);
        let Some(parts) = self.parts() else { return };
        let user = &parts.user;
        let named = kv::open_names(user, &mut change);
        if change.collection.starts_with(RESERVED_PREFIX) {
            return;
        }
        let overwritten = named.is_ok() && parts.offline.as_ref().is_some_and(|offline| offline.on_change(&change));
        let kind = match change.op {
            ChangeOp::Set => "set",
            ChangeOp::Delete => "delete",
        };
        let data = match (named, &change.value) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Ok(JsValue::NULL),
            (Ok(()), Some(value)) => {
                let scope = KvScope { user_id: &user.user_id, collection: &change.collection, id: &change.id };
                user.kv.decode(&scope, value).map_err(SdkError::from).and_then(|text| json::parse(&text))
            }
        };
        let (data, error) = match data {
            Ok(data) => (data, JsValue::UNDEFINED),
            Err(e) => (JsValue::NULL, e.into()),
        };
        let payload = to_js(&ChangeView {
            collection: &change.collection,
            id: &change.id,
            seq: change.seq as f64,
            kind,
            data,
            error,
            overwritten,
        });
        parts.events.emit(EventKind::Change, payload);
    }
}

/// A feed dropped without `stop` (its session gone) closes its socket too.
impl Drop for Feed {
    fn drop(&mut self) {
        self.halt.abort();
    }
}

/// Connects, reads, and connects again after a backoff, until the feed stops (or
/// is dropped).
async fn run(feed: Weak<Feed>) {
    let mut attempt = 0u32;
    loop {
        let (end, registration) = AbortHandle::new_pair();
        match feed.upgrade() {
            Some(feed) => *feed.connection.borrow_mut() = Some(end),
            None => return,
        }
        match Abortable::new(connection(&feed, &mut attempt), registration).await {
            // Ended to replay from earlier: connect again at once.
            Err(_) => {}
            Ok(Flow::Stop) => {
                if let Some(feed) = feed.upgrade() {
                    feed.stop();
                }
                return;
            }
            Ok(_) => {
                let delay = timer::backoff_ms(attempt, BACKOFF_START_MS, BACKOFF_MAX_MS);
                attempt = attempt.saturating_add(1);
                timer::sleep(delay).await;
            }
        }
    }
}

/// One connection, from opening to closing: `Reconnect` when it ends, `Stop` when
/// the feed must not go on (stopped, dropped, signed out, refused).
async fn connection(feed: &Weak<Feed>, attempt: &mut u32) -> Flow {
    let Some(offline) = feed.upgrade().and_then(|feed| feed.parts()).map(|parts| parts.offline.clone()) else {
        return Flow::Stop;
    };
    // Offline kv: what was queued reaches the accelerator before the feed goes on.
    if let Some(offline) = &offline {
        match offline.send_queue().await {
            Ok(()) if offline.is_online() => {}
            Err(e) if e.code == ErrorCode::Unauthorized => return Flow::Stop,
            _ => return Flow::Reconnect,
        }
    }
    let Some((url, token, since)) = feed.upgrade().and_then(|feed| {
        let parts = feed.parts()?;
        Some((parts.http.feed_url(), parts.http.token(), feed.connect_from()))
    }) else {
        return Flow::Stop;
    };
    let Some(token) = token else { return Flow::Stop };
    let Ok(mut socket) = WebSocket::open(&url) else { return Flow::Reconnect };
    // gloo's sink is ready once the socket is no longer connecting: open, or failed
    // (sending on a failed socket would log an error in the console).
    let settled = poll_fn(|cx| socket.poll_ready_unpin(cx)).await;
    if settled.is_err() || !matches!(socket.state(), State::Open) {
        if let Some(offline) = &offline {
            offline.went_offline();
        }
        return Flow::Reconnect;
    }
    let auth = serde_json::to_string(&ClientFrame::Auth { token, since: Some(since) }).expect("frames serialize");
    if socket.send(Message::Text(auth)).await.is_err() {
        return Flow::Reconnect;
    }
    // Errors and the close arrive as items before the end; binary frames are not ours.
    while let Some(item) = socket.next().await {
        let Ok(Message::Text(text)) = item else { continue };
        let Some(feed) = feed.upgrade() else { return Flow::Stop };
        match feed.on_message(&text) {
            Flow::Read => {}
            Flow::Ready => *attempt = 0,
            flow => return flow,
        }
    }
    Flow::Reconnect
}
