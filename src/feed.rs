//! The change feed: one websocket per signed-in client, authenticated in its first
//! frame, resumed from the last sequence number after any disconnect.
//!
//! Reconnects forever with exponential backoff (250 ms doubling to 30 s) and jitter
//! (each delay drawn from its upper half). A change is delivered once, in order:
//! anything at or below the last delivered sequence is a duplicate and is skipped.
//! Sequence numbers may skip: the accelerator's log keeps only the latest change of
//! each key (SPEC.md §7.3), and a pruned log is announced by `resync`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use coffer_core::ErrorCode;
use coffer_core::kv::KvScope;
use coffer_core::proto::{ChangeEvent, ChangeOp, ClientFrame, ServerFrame};
use coffer_core::validate::RESERVED_PREFIX;
use js_sys::Function;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::error::SdkError;
use crate::events::{EventKind, Events};
use crate::http::Http;
use crate::js::to_js;
use crate::session::User;
use crate::{json, timer};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: i32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(message: &str);
}

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
}

/// A `resync` event (`KvResyncEvent`).
#[derive(Serialize)]
struct ResyncView {
    seq: f64,
}

/// The websocket's event handlers, kept alive as long as their socket.
struct Handlers {
    _open: Closure<dyn FnMut()>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

/// What a feed reads of its client, and the client itself, held so an app that
/// keeps only its listener still gets events (the client holds the feed in turn;
/// `stop` breaks the cycle).
struct Parts {
    http: Rc<Http>,
    events: Rc<Events>,
    user: Rc<User>,
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
    /// The current socket, if connected or connecting.
    socket: RefCell<Option<WebSocket>>,
    /// Handlers of the current socket. Replaced only from `connect`, never from
    /// inside a handler (a closure must not be dropped while it runs).
    handlers: RefCell<Option<Handlers>>,
    /// The last sequence number delivered (or skipped as the SDK's own).
    last_seq: Cell<u64>,
    /// Failed attempts since the last `ready`, for the backoff.
    attempt: Cell<u32>,
    /// Set by `stop`: no more reconnects.
    stopped: Cell<bool>,
    /// The pending reconnect timer.
    timer: RefCell<Option<JsValue>>,
}

impl Feed {
    /// Starts a feed for `user` that delivers changes after `since` to `events`.
    pub fn start(
        client: Rc<dyn std::any::Any>,
        http: Rc<Http>,
        events: Rc<Events>,
        user: Rc<User>,
        since: u64,
    ) -> Rc<Feed> {
        let feed = Rc::new(Feed {
            parts: RefCell::new(Some(Rc::new(Parts { http, events, user, _client: client }))),
            socket: RefCell::new(None),
            handlers: RefCell::new(None),
            last_seq: Cell::new(since),
            attempt: Cell::new(0),
            stopped: Cell::new(false),
            timer: RefCell::new(None),
        });
        feed.connect();
        feed
    }

    /// The client's parts, while the feed runs.
    fn parts(&self) -> Option<Rc<Parts>> {
        self.parts.borrow().clone()
    }

    /// The last sequence number delivered, to resume from later.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.get()
    }

    /// Closes the socket for good and lets go of the client.
    pub fn stop(&self) {
        self.stopped.set(true);
        let parts = self.parts.borrow_mut().take();
        if let Some(timer) = self.timer.borrow_mut().take() {
            clear_timeout(&timer);
        }
        if let Some(socket) = self.socket.borrow_mut().take() {
            // Detach the handlers first: the feed (and with it their closures) may be
            // dropped before the socket's `close` event fires, and a dropped closure
            // called from JS throws "closure invoked … after being dropped".
            socket.set_onopen(None);
            socket.set_onmessage(None);
            socket.set_onclose(None);
            let _ = socket.close();
        }
        drop(parts);
    }

    fn connect(self: &Rc<Self>) {
        if self.stopped.get() {
            return;
        }
        let Some(parts) = self.parts() else { return };
        // Replacing the old socket's handlers is safe here: this runs from a timer or
        // from `start`, never inside one of them.
        if let Some(old) = self.socket.borrow_mut().take() {
            old.set_onopen(None);
            old.set_onmessage(None);
            old.set_onclose(None);
            let _ = old.close();
        }
        let socket = match WebSocket::new(&parts.http.feed_url()) {
            Ok(socket) => socket,
            Err(_) => return self.retry_later(),
        };
        let weak = Rc::downgrade(self);
        let open = Closure::<dyn FnMut()>::new({
            let weak = weak.clone();
            move || {
                if let Some(feed) = weak.upgrade() {
                    feed.on_open();
                }
            }
        });
        let message = Closure::<dyn FnMut(MessageEvent)>::new({
            let weak = weak.clone();
            move |event: MessageEvent| {
                if let Some(feed) = weak.upgrade() {
                    feed.on_message(event);
                }
            }
        });
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |_event: CloseEvent| {
            if let Some(feed) = weak.upgrade() {
                feed.on_close();
            }
        });
        socket.set_onopen(Some(open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(close.as_ref().unchecked_ref()));
        *self.handlers.borrow_mut() = Some(Handlers { _open: open, _message: message, _close: close });
        *self.socket.borrow_mut() = Some(socket);
    }

    fn send(&self, frame: &ClientFrame) {
        if let Some(socket) = self.socket.borrow().as_ref() {
            let _ = socket.send_with_str(&serde_json::to_string(frame).expect("frames serialize"));
        }
    }

    /// Drops the current connection; `on_close` then schedules a resume.
    fn reconnect(&self) {
        if let Some(socket) = self.socket.borrow().as_ref() {
            let _ = socket.close();
        }
    }

    fn on_open(&self) {
        let Some(parts) = self.parts() else { return };
        let Some(token) = parts.http.token() else {
            return self.stop();
        };
        self.send(&ClientFrame::Auth { token, since: Some(self.last_seq.get()) });
    }

    fn on_close(self: &Rc<Self>) {
        self.socket.borrow_mut().take();
        self.retry_later();
    }

    fn retry_later(self: &Rc<Self>) {
        if self.stopped.get() {
            return;
        }
        let attempt = self.attempt.get();
        self.attempt.set(attempt.saturating_add(1));
        let delay = timer::backoff_ms(attempt, BACKOFF_START_MS, BACKOFF_MAX_MS);
        let weak = Rc::downgrade(self);
        // Owned by JS and freed once it has run, so a retry scheduled from inside a
        // retry never drops a running closure.
        let callback = Closure::once_into_js(move || {
            if let Some(feed) = weak.upgrade() {
                feed.timer.borrow_mut().take();
                feed.connect();
            }
        });
        let handle = set_timeout(callback.unchecked_ref(), delay as i32);
        *self.timer.borrow_mut() = Some(handle);
    }

    fn on_message(&self, event: MessageEvent) {
        let Some(text) = event.data().as_string() else {
            return;
        };
        let frame: ServerFrame = match serde_json::from_str(&text) {
            Ok(frame) => frame,
            Err(_) => {
                console_warn("coffer: unreadable frame on the change feed; reconnecting");
                return self.reconnect();
            }
        };
        match frame {
            ServerFrame::Ready { .. } => self.attempt.set(0),
            ServerFrame::Change(change) => self.on_change(change),
            ServerFrame::Resync { seq } => {
                self.last_seq.set(seq);
                if let Some(parts) = self.parts() {
                    parts.events.emit(EventKind::Resync, to_js(&ResyncView { seq: seq as f64 }));
                }
            }
            ServerFrame::Error(body) => {
                console_warn(&format!("coffer: the change feed stopped: {} ({})", body.message, body.code));
                if body.code == ErrorCode::Unauthorized {
                    self.stop();
                } else {
                    self.reconnect();
                }
            }
        }
    }

    fn on_change(&self, change: ChangeEvent) {
        let last = self.last_seq.get();
        if change.seq <= last {
            return;
        }
        self.last_seq.set(change.seq);
        if change.collection.starts_with(RESERVED_PREFIX) {
            return;
        }
        let Some(parts) = self.parts() else { return };
        let user = &parts.user;
        let kind = match change.op {
            ChangeOp::Set => "set",
            ChangeOp::Delete => "delete",
        };
        let data = match &change.value {
            None => Ok(JsValue::NULL),
            Some(value) => {
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
        });
        parts.events.emit(EventKind::Change, payload);
    }
}
