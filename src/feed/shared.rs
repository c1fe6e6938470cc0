//! A feed shared by the account's clients on this origin (SPEC.md D.4): electing
//! the leader, passing frames on, and the `hello` / `caughtUp` exchange by which a
//! client behind the leader gets what it missed, in order. The bookkeeping of both
//! sides is the core's ([`Follower`](coffer_core::tabs::Follower),
//! [`Leader`](coffer_core::tabs::Leader)); this file moves the messages and keeps
//! the timers.

use std::rc::Rc;

use coffer_core::tabs::{HELLO_WAIT_MS, Leader, REWIND_GATHER_MS};
use wasm_bindgen_futures::spawn_local;

use super::Feed;
use crate::random;
use crate::tabs::{TabMessage, Tabs};
use crate::timer;

impl Feed {
    /// Waits for the account's feed lock, and meanwhile follows whoever holds it.
    pub(super) fn join(self: &Rc<Self>, tabs: &Tabs) {
        let elected = Rc::downgrade(self);
        let lease = tabs.lead(move || {
            if let Some(feed) = elected.upgrade() {
                feed.take_lead();
            }
        });
        *self.lease.borrow_mut() = Some(lease);
        self.say_hello();
    }

    /// This client now holds the lock: it connects from its own position (what it
    /// held comes again from the accelerator), and the others say where they are.
    fn take_lead(self: &Rc<Self>) {
        if self.parts().is_none() {
            return;
        }
        self.follower.borrow_mut().lead();
        self.leading.set(true);
        self.post(&TabMessage::Leader);
        self.connect();
    }

    /// A message from another client of the account (the session handles sign-out).
    pub fn on_tab_message(self: &Rc<Self>, message: TabMessage) {
        if self.leading.get() {
            if let TabMessage::Hello { since, id } = message {
                let answer = self.leader.borrow_mut().hello(since, id, self.last_seq.get());
                match answer {
                    Some(answer) => self.post(&answer),
                    None => self.rewind_soon(),
                }
            }
            return;
        }
        match message {
            TabMessage::Frame { text } => {
                let now = self.follower.borrow_mut().frame(text);
                if let Some(text) = now {
                    let _ = self.on_message(&text);
                }
            }
            TabMessage::CaughtUp { id } => {
                let held = self.follower.borrow_mut().caught_up(id);
                self.apply(held);
            }
            TabMessage::Leader => self.say_hello(),
            TabMessage::Hello { .. } | TabMessage::SignedOut { .. } => {}
        }
    }

    /// Tells the leader where this client is, holding frames until it answers (or
    /// for [`HELLO_WAIT_MS`] at most).
    fn say_hello(self: &Rc<Self>) {
        let id = u32::from_le_bytes(random::bytes());
        let hello = self.follower.borrow_mut().hello(self.last_seq.get(), id);
        self.post(&hello);
        let feed = Rc::downgrade(self);
        spawn_local(async move {
            timer::sleep(HELLO_WAIT_MS).await;
            if let Some(feed) = feed.upgrade() {
                let held = feed.follower.borrow_mut().gave_up(id);
                feed.apply(held);
            }
        });
    }

    /// Applies frames that were held.
    fn apply(&self, held: Option<Vec<String>>) {
        for text in held.into_iter().flatten() {
            let _ = self.on_message(&text);
        }
    }

    /// Reconnects to replay for the clients behind, once the `hello`s that come in
    /// a burst (a new leader, tabs opened together) are in.
    fn rewind_soon(self: &Rc<Self>) {
        if self.rewinding.replace(true) {
            return;
        }
        let feed = Rc::downgrade(self);
        spawn_local(async move {
            timer::sleep(REWIND_GATHER_MS).await;
            if let Some(feed) = feed.upgrade() {
                feed.rewinding.set(false);
                if let Some(connection) = feed.connection.borrow_mut().take() {
                    connection.abort();
                }
            }
        });
    }

    /// Passes a frame on to the account's other clients, if this one leads.
    pub(super) fn relay(&self, text: &str) {
        if self.leading.get() {
            self.post(&TabMessage::Frame { text: text.to_owned() });
        }
    }

    /// If this client leads: posts the `caughtUp`s a frame made due.
    pub(super) fn answer(&self, due: impl FnOnce(&mut Leader) -> Vec<TabMessage>) {
        if !self.leading.get() {
            return;
        }
        let answers = due(&mut self.leader.borrow_mut());
        for answer in &answers {
            self.post(answer);
        }
    }

    fn post(&self, message: &TabMessage) {
        if let Some(tabs) = &self.tabs {
            tabs.post(message);
        }
    }
}
