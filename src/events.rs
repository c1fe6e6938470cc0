//! Listener registry and delivery. Every event is queued as a microtask, so it
//! reaches listeners after the Rust code that produced it has returned and released
//! every borrow: a listener may throw or call back into the client freely.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::error::SdkError;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(callback: &Function);

    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str, error: &JsValue);
}

/// The events an app can listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A kv value of this user changed, on any device.
    Change,
    /// The change feed fell too far behind: reload the view.
    Resync,
    /// The account signed out in another tab (`client.on("signout")`).
    SignOut,
    /// Offline kv went online or offline, or its queue changed (`kv.on("status")`).
    Status,
}

impl EventKind {
    /// Parses the name passed to `kv.on(name, …)`.
    pub fn parse_kv(name: &str) -> Result<Self, SdkError> {
        match name {
            "change" => Ok(EventKind::Change),
            "resync" => Ok(EventKind::Resync),
            "status" => Ok(EventKind::Status),
            other => Err(SdkError::invalid(format!(
                "unknown event {other:?}: kv emits \"change\", \"resync\" and \"status\""
            ))),
        }
    }

    /// Parses the name passed to `client.on(name, …)`.
    pub fn parse_client(name: &str) -> Result<Self, SdkError> {
        match name {
            "signout" => Ok(EventKind::SignOut),
            other => Err(SdkError::invalid(format!("unknown event {other:?}: a client emits \"signout\""))),
        }
    }

    /// Whether listeners of this kind need the change feed.
    fn needs_feed(self) -> bool {
        matches!(self, EventKind::Change | EventKind::Resync)
    }
}

/// One registered listener.
struct Listener {
    /// Handle that `off()` removes it by.
    id: u32,
    /// Which event it wants.
    kind: EventKind,
    /// The app's callback.
    callback: Function,
}

/// The listeners of one client.
#[derive(Default)]
pub struct Events {
    /// Source of listener handles.
    next_id: Cell<u32>,
    /// Registered listeners, in registration order (delivery order).
    listeners: RefCell<Vec<Listener>>,
}

impl Events {
    /// Registers a listener; returns its handle.
    pub fn add(&self, kind: EventKind, callback: Function) -> u32 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.listeners.borrow_mut().push(Listener { id, kind, callback });
        id
    }

    /// Removes a listener; removing twice is harmless.
    pub fn remove(&self, id: u32) {
        self.listeners.borrow_mut().retain(|l| l.id != id);
    }

    /// Whether anyone listens to the change feed.
    pub fn wants_feed(&self) -> bool {
        self.listeners.borrow().iter().any(|l| l.kind.needs_feed())
    }

    /// Queues `payload` for every listener of `kind` that is still registered when
    /// the microtask runs.
    pub fn emit(self: &Rc<Self>, kind: EventKind, payload: JsValue) {
        let events = Rc::clone(self);
        let task = Closure::once_into_js(move || events.deliver(kind, &payload));
        queue_microtask(task.unchecked_ref());
    }

    /// Queues `payload` for one listener only (if it is still registered then).
    pub fn tell(self: &Rc<Self>, callback: Function, payload: JsValue) {
        let events = Rc::clone(self);
        let task = Closure::once_into_js(move || {
            let registered =
                events.listeners.borrow().iter().any(|l| JsValue::from(&l.callback) == JsValue::from(&callback));
            if registered {
                if let Err(thrown) = callback.call1(&JsValue::NULL, &payload) {
                    console_error("coffer: an event listener threw:", &thrown);
                }
            }
        });
        queue_microtask(task.unchecked_ref());
    }

    fn deliver(&self, kind: EventKind, payload: &JsValue) {
        let ids: Vec<u32> = self.listeners.borrow().iter().filter(|l| l.kind == kind).map(|l| l.id).collect();
        for id in ids {
            // Looked up again each time: an earlier listener may have removed this one.
            let callback = self.listeners.borrow().iter().find(|l| l.id == id).map(|l| l.callback.clone());
            if let Some(callback) = callback {
                if let Err(thrown) = callback.call1(&JsValue::NULL, payload) {
                    console_error("coffer: an event listener threw:", &thrown);
                }
            }
        }
    }
}
