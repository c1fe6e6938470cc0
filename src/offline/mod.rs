//! Offline kv (`offline: true` at sign-in; SPEC.md D.5). While the accelerator
//! cannot be reached, `set` and `delete` are queued on the device — sealed exactly as
//! they will be sent, then sealed again as device records — and `get` and `list`
//! answer from what this device last knew (the cache) with the queue on top. When
//! the accelerator answers again the queue is sent in order, under a Web Lock so one
//! tab sends it, before the change feed connects again.
//!
//! Every write goes through the queue, online too: one path, one order. Online, the
//! call that queued a write sends the queue at once and answers as the accelerator
//! did; offline it answers as soon as the write is kept.

mod store;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};

use coffer_core::ErrorCode;
use coffer_core::kv::KvScope;
use coffer_core::offline::{self, CachedKey, Known, Local, QueuedWrite, Sent};
use coffer_core::proto::{ChangeEvent, ChangeOp, KvValue, SessionInfo};
use futures_util::lock::Mutex;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::error::{SdkError, SdkResult};
use crate::events::{EventKind, Events};
use crate::http::Http;
use crate::js::{self, to_js};
use crate::legacy_names::LegacyNames;
use crate::session::User;
use crate::{kv, tabs, timer};
use store::{Kept, Queued};

/// First wait before asking the accelerator again, once it could not be reached.
const PROBE_START_MS: f64 = 500.0;
/// Longest such wait.
const PROBE_MAX_MS: f64 = 10_000.0;

/// A `status` event (`KvStatusEvent` in types.d.ts).
#[derive(Serialize)]
struct StatusView {
    status: &'static str,
    pending: u32,
}

/// A `change` event for a queued write the accelerator refused (`KvChangeEvent`).
#[derive(Serialize)]
struct RefusedView<'a> {
    collection: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    data: JsValue,
    seq: u32,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    error: JsValue,
}

/// What the accelerator answered to one queued write.
struct Stored {
    existed: bool,
}

/// One signed-in client's offline kv.
pub struct Offline {
    kept: Kept,
    http: Rc<Http>,
    events: Rc<Events>,
    user: Rc<User>,
    /// Whether the accelerator answered last time it was asked.
    online: Cell<bool>,
    /// Writes queued, as last counted.
    pending: Cell<u32>,
    /// Queued writes sent late, to flag the changes that overwrite them.
    sent: RefCell<Sent>,
    /// The entries whose calls wait for the accelerator's answer, and the answers
    /// for them, whichever call's pass sent them.
    waiting: RefCell<HashSet<String>>,
    answers: RefCell<HashMap<String, SdkResult<Stored>>>,
    /// One pass at a time in this client, whether or not the page has Web Locks.
    sending: Mutex<()>,
    /// Whether a loop is asking the accelerator until it answers.
    probing: Cell<bool>,
    /// Signed out: nothing more is sent or kept.
    stopped: Cell<bool>,
}

impl Offline {
    /// Offline kv for `user`, `online` or not as the client starts; counts the queue,
    /// and if it starts offline, asks the accelerator until it answers.
    pub fn start(http: Rc<Http>, events: Rc<Events>, user: Rc<User>, online: bool) -> Rc<Offline> {
        let offline = Rc::new(Offline {
            kept: Kept::new(Rc::clone(&user)),
            http,
            events,
            user,
            online: Cell::new(online),
            pending: Cell::new(0),
            sent: RefCell::new(Sent::default()),
            waiting: RefCell::new(HashSet::new()),
            answers: RefCell::new(HashMap::new()),
            sending: Mutex::new(()),
            probing: Cell::new(false),
            stopped: Cell::new(false),
        });
        let counting = Rc::clone(&offline);
        spawn_local(async move {
            counting.count().await;
            // Left by an earlier page: sent now, not at the app's next write.
            if counting.pending.get() > 0 {
                counting.probe();
            }
        });
        if !online {
            offline.probe();
        }
        offline
    }

    /// Stops for good (signed out), forgetting the cache; the queue stays, sealed,
    /// for the account's next sign-in.
    pub fn stop(self: &Rc<Self>) {
        self.stopped.set(true);
        let offline = Rc::clone(self);
        spawn_local(async move {
            if let Err(e) = offline.kept.forget_cache().await {
                js::warn(&format!("coffer: could not clear the offline cache: {}", e.message));
            }
        });
    }

    /// The current status, as a `status` event carries it.
    pub fn status(&self) -> JsValue {
        let status = if self.online.get() { "online" } else { "offline" };
        to_js(&StatusView { status, pending: self.pending.get() })
    }

    fn tell_status(&self) {
        self.events.emit(EventKind::Status, self.status());
    }

    /// Whether the accelerator answered last time it was asked.
    pub fn is_online(&self) -> bool {
        self.online.get()
    }

    /// The accelerator answered.
    pub fn went_online(&self) {
        if !self.online.replace(true) {
            self.tell_status();
        }
    }

    /// The accelerator could not be reached: say so, and ask until it answers.
    pub fn went_offline(self: &Rc<Self>) {
        if self.online.replace(false) {
            self.tell_status();
        }
        self.probe();
    }

    /// How many writes are queued, counted again.
    pub async fn pending(&self) -> SdkResult<u32> {
        let n = self.kept.pending().await?;
        if self.pending.replace(n) != n {
            self.tell_status();
        }
        Ok(n)
    }

    async fn count(&self) {
        if let Err(e) = self.pending().await {
            js::warn(&format!("coffer: could not count the offline queue: {}", e.message));
        }
    }

    /// Asks the accelerator, with a growing wait, until it answers and nothing is
    /// queued: sends the queue if anything waits, else checks the session.
    fn probe(self: &Rc<Self>) {
        if self.probing.replace(true) {
            return;
        }
        let offline: Weak<Offline> = Rc::downgrade(self);
        spawn_local(async move {
            let mut attempt = 0;
            loop {
                timer::sleep(timer::backoff_ms(attempt, PROBE_START_MS, PROBE_MAX_MS)).await;
                attempt += 1;
                let Some(offline) = offline.upgrade() else { return };
                if offline.stopped.get() || (offline.online.get() && offline.pending.get() == 0) {
                    offline.probing.set(false);
                    return;
                }
                if offline.pending.get() > 0 {
                    // Marks it online (or not) itself. `Unauthorized`: the accelerator
                    // answers, but the queue waits for a new sign-in.
                    if let Err(e) = offline.send_queue().await {
                        if e.code == ErrorCode::Unauthorized {
                            offline.went_online();
                            offline.probing.set(false);
                            return;
                        }
                    }
                } else {
                    let answer: SdkResult<SessionInfo> = offline.http.get("/v1/auth/session").await;
                    if !matches!(answer, Err(e) if e.code == ErrorCode::Network) {
                        offline.went_online();
                    }
                }
            }
        });
    }

    /// Sends the queue while the accelerator answers.
    pub async fn send_queue(self: &Rc<Self>) -> SdkResult<()> {
        self.send(None).await
    }

    /// Sends the queue, in order, while the accelerator answers: all of it, or (for
    /// the call that queued `own`) up to the pass that sent `own`. One pass at a time
    /// in this client, and under the account's queue lock one tab at a time. Each
    /// write's answer goes to the call waiting for it; a write refused for good is
    /// taken off, and reported by a `change` event with `error` when no call waits
    /// for it here. `Unauthorized`, or a failed move to sealed names, stops, keeping
    /// the queue.
    async fn send(self: &Rc<Self>, own: Option<&str>) -> SdkResult<()> {
        let _turn = self.sending.lock().await;
        if self.stopped.get() {
            return Ok(());
        }
        let _lease = tabs::wait_lock(&offline::queue_lock(&self.user.device.owner())).await?;
        // The account's keys move to their sealed names before any queued write goes
        // (every write would wait for it): a move that fails stops here, keeping the
        // queue, rather than failing each write in turn.
        if let Err(e) = LegacyNames::settled(&self.http, &self.user).await {
            match e.code {
                ErrorCode::Network => self.went_offline(),
                _ if e.is_transient() => self.probe(),
                _ => return Err(e),
            }
            self.pending().await?;
            return Ok(());
        }
        'passes: loop {
            let queue = self.kept.queue().await?;
            if queue.is_empty() {
                break;
            }
            let mut sent_own = false;
            for queued in queue {
                match self.store(&queued.write).await {
                    Err(e) if e.code == ErrorCode::Network => {
                        self.went_offline();
                        break 'passes;
                    }
                    Err(e) if e.is_transient() => {
                        self.probe();
                        break 'passes;
                    }
                    Err(e) if e.code == ErrorCode::Unauthorized => return Err(e),
                    answer => {
                        self.kept.dequeue(queued.n).await?;
                        sent_own |= own == Some(queued.entry.as_str());
                        self.answer(&queued, answer);
                    }
                }
            }
            self.went_online();
            if sent_own {
                break;
            }
        }
        self.pending().await?;
        Ok(())
    }

    /// Hands a queued write's answer to the call waiting for it here; a refusal no
    /// call here waits for is told to the app.
    fn answer(&self, queued: &Queued, answer: SdkResult<Stored>) {
        if self.waiting.borrow().contains(&queued.entry) {
            self.answers.borrow_mut().insert(queued.entry.clone(), answer);
        } else if let Err(e) = answer {
            self.refused(queued, &e);
        }
    }

    /// Sends one queued write, and caches what the accelerator now holds.
    async fn store(&self, write: &QueuedWrite) -> SdkResult<Stored> {
        let (collection, id) = (write.collection.clone(), write.id.clone());
        let (seq, existed, known) = match &write.value {
            Some(value) => {
                let seq = kv::store_value(&self.http, &self.user, &collection, &id, value.clone()).await?;
                (Some(seq), true, Known::Value { value: value.clone() })
            }
            None => {
                let answer = kv::delete_key(&self.http, &self.user, &collection, &id).await?;
                (answer.seq, answer.existed, Known::Absent)
            }
        };
        if let Some(seq) = seq {
            self.sent.borrow_mut().stored(&write.collection, &write.id, seq);
        }
        self.cache(&write.collection, &write.id, known).await;
        Ok(Stored { existed })
    }

    fn refused(&self, queued: &Queued, error: &SdkError) {
        let QueuedWrite { collection, id, value } = &queued.write;
        js::warn(&format!("coffer: the accelerator refused a queued write to {collection}/{id}: {}", error.message));
        let kind = if value.is_some() { "set" } else { "delete" };
        let view = RefusedView { collection, id, kind, data: JsValue::NULL, seq: 0, error: error.clone().into() };
        self.events.emit(EventKind::Change, to_js(&view));
    }

    /// Keeps what is now known of a key; a failure only costs an offline answer.
    async fn cache(&self, collection: &str, id: &str, known: Known) {
        if self.stopped.get() {
            return;
        }
        let key = CachedKey { collection: collection.to_owned(), id: id.to_owned(), known };
        if let Err(e) = self.kept.remember(vec![key]).await {
            js::warn(&format!("coffer: could not keep a value for offline use: {}", e.message));
        }
    }

    /// `kv.set` or `kv.delete`: queues the write and, online, sends the queue; the
    /// answer is whether the key existed (for a delete), as the accelerator said or,
    /// offline, as this device knows.
    pub async fn write(self: &Rc<Self>, write: QueuedWrite) -> SdkResult<bool> {
        self.sent.borrow_mut().forget(&write.collection, &write.id);
        // Queued before anything else is awaited, so writes queue in call order.
        let entry = self.kept.enqueue(&write).await?;
        // Only a delete answers whether the key existed.
        let existed_here = match write.value {
            Some(_) => true,
            None => self.existed_before(&entry, &write.collection, &write.id).await?,
        };
        if !self.online.get() {
            self.pending().await?;
            return Ok(existed_here);
        }
        self.waiting.borrow_mut().insert(entry.clone());
        let sent = self.send(Some(&entry)).await;
        self.waiting.borrow_mut().remove(&entry);
        let answer = self.answers.borrow_mut().remove(&entry);
        match (sent, answer) {
            (_, Some(Ok(stored))) => {
                // Sent at once: not a write that waited.
                self.sent.borrow_mut().forget(&write.collection, &write.id);
                Ok(stored.existed)
            }
            (_, Some(Err(e))) => Err(e),
            (Err(e), None) => {
                self.withdraw(&entry).await;
                Err(e)
            }
            // Queued (the accelerator went away), or sent by another tab.
            (Ok(()), None) => Ok(existed_here),
        }
    }

    /// Whether a key existed as far as this device knows, before the write `entry`.
    async fn existed_before(&self, entry: &str, collection: &str, id: &str) -> SdkResult<bool> {
        let queue = self.kept.queue().await?;
        let before: Vec<QueuedWrite> = queue.into_iter().take_while(|q| q.entry != entry).map(|q| q.write).collect();
        Ok(self.local(&before, collection, id).await?.exists())
    }

    /// The feed missed changes: what is kept may be stale, so it is forgotten.
    pub fn on_resync(self: &Rc<Self>) {
        let offline = Rc::clone(self);
        spawn_local(async move {
            if let Err(e) = offline.kept.forget_cache().await {
                js::warn(&format!("coffer: could not clear the offline cache: {}", e.message));
            }
        });
    }

    /// Takes a write whose call failed off the queue, if it is still there.
    async fn withdraw(&self, entry: &str) {
        if let Ok(queue) = self.kept.queue().await {
            if let Some(queued) = queue.iter().find(|q| q.entry == entry) {
                let _ = self.kept.dequeue(queued.n).await;
            }
        }
        self.count().await;
    }

    /// A key as this device knows it, with `queue`'s writes on top.
    async fn local(&self, queue: &[QueuedWrite], collection: &str, id: &str) -> SdkResult<Local> {
        let cached = self.kept.cached(collection, id).await?;
        let listed = cached.is_none() && self.kept.listed(collection).await?;
        Ok(offline::local(queue, cached.as_ref(), listed, collection, id))
    }

    async fn writes(&self) -> SdkResult<Vec<QueuedWrite>> {
        Ok(self.kept.queue().await?.into_iter().map(|q| q.write).collect())
    }

    fn open(&self, collection: &str, id: &str, value: &KvValue) -> SdkResult<String> {
        let scope = KvScope { user_id: &self.user.user_id, collection, id };
        Ok(self.user.kv.decode(&scope, value)?)
    }

    /// `kv.get`: the queue's last write to the key, else the accelerator's answer,
    /// else — offline — the cache's.
    pub async fn get(self: &Rc<Self>, collection: String, id: String) -> SdkResult<Option<String>> {
        let queue = self.writes().await?;
        if let Some(value) = offline::queued_value(&queue, &collection, &id) {
            return value.map(|value| self.open(&collection, &id, value)).transpose();
        }
        if self.online.get() {
            match kv::fetch_value(&self.http, &self.user, &collection, &id).await {
                Ok(value) => {
                    self.went_online();
                    let known = match &value {
                        Some(value) => Known::Value { value: value.clone() },
                        None => Known::Absent,
                    };
                    self.cache(&collection, &id, known).await;
                    return value.map(|value| self.open(&collection, &id, &value)).transpose();
                }
                Err(e) if e.code == ErrorCode::Network => self.went_offline(),
                Err(e) => return Err(e),
            }
        }
        match self.local(&[], &collection, &id).await? {
            Local::Value(value) => self.open(&collection, &id, &value).map(Some),
            Local::Absent => Ok(None),
            Local::Exists | Local::Unknown => Err(not_kept(&format!("the value of {collection}/{id}"))),
        }
    }

    /// `kv.list`: the accelerator's ids (else, offline, the cache's, if this device
    /// knows the whole collection) with the queue applied.
    pub async fn list(self: &Rc<Self>, collection: String) -> SdkResult<Vec<String>> {
        let queue = self.writes().await?;
        if self.online.get() {
            let before = self.kept.cached_ids(&collection).await?;
            match kv::list_ids(&self.http, &self.user, &collection).await {
                Ok(ids) => {
                    self.went_online();
                    let kept =
                        if self.stopped.get() { Ok(()) } else { self.kept.listed_as(&collection, &ids, &before).await };
                    if let Err(e) = kept {
                        js::warn(&format!("coffer: could not keep a list for offline use: {}", e.message));
                    }
                    return Ok(offline::ids(ids, &queue, &collection));
                }
                Err(e) if e.code == ErrorCode::Network => self.went_offline(),
                Err(e) => return Err(e),
            }
        }
        if !self.kept.listed(&collection).await? {
            return Err(not_kept(&format!("the ids of {collection}")));
        }
        Ok(offline::ids(self.kept.cached_ids(&collection).await?, &queue, &collection))
    }

    /// A change from the feed: cached, and whether it overwrote a write this device
    /// queued offline and sent late.
    pub fn on_change(self: &Rc<Self>, change: &ChangeEvent) -> bool {
        let known = match (&change.op, &change.value) {
            (ChangeOp::Set, Some(value)) => Known::Value { value: value.clone() },
            _ => Known::Absent,
        };
        let offline = Rc::clone(self);
        let (collection, id) = (change.collection.clone(), change.id.clone());
        spawn_local(async move { offline.cache(&collection, &id, known).await });
        self.sent.borrow_mut().overwritten(&change.collection, &change.id, change.seq)
    }
}

/// Offline, and not on this device either.
fn not_kept(what: &str) -> SdkError {
    SdkError::network(format!(
        "the accelerator cannot be reached, and {what} is not kept on this device (offline, a client answers with what it read or listed before)"
    ))
}
