//! The state every call of one client shares: the accelerator connection, the
//! signed-in user, the app's listeners, the change feed and the cached space keys.
//! `Client`, `client.kv`, `client.space` and `client.storage` each hold the
//! [`Session`]; the file pipeline gets only its [`Http`], and the feed only the parts
//! it reads, so nothing here imports the classes built on it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use coffer_core::ErrorCode;
use coffer_core::account::RootSecret;
use coffer_core::device::DeviceKeys;
use coffer_core::identity::UserKeys;
use coffer_core::kv::KvKeys;
use coffer_core::names::NameKeys;
use coffer_core::tabs;
use js_sys::{Function, Promise};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};

use crate::error::{SdkError, SdkResult};
use crate::events::{EventKind, Events};
use crate::feed::Feed;
use crate::http::Http;
use crate::js::to_js;
use crate::keyring::Keyring;
use crate::legacy_names::LegacyNames;
use crate::offline::Offline;
use crate::remember;
use crate::tabs::{TabMessage, Tabs};

/// The signed-in user's identity and keys.
pub struct User {
    /// Stable account id, bound into every kv envelope.
    pub user_id: String,
    /// The username signed in with.
    pub username: String,
    /// The root secret; every data key derives from it.
    pub root: RootSecret,
    /// kv seal and MAC keys, derived once.
    pub kv: KvKeys,
    /// The keys that seal kv names (SPEC.md §4.4), derived once.
    pub names: NameKeys,
    /// Whether this account's kv keys stored under plaintext names are moved yet.
    pub legacy: LegacyNames,
    /// The keys of what is kept on this device, derived once.
    pub device: DeviceKeys,
    /// The account's X25519 key pair (SPEC.md §3.6), derived once.
    pub identity: UserKeys,
    /// Whether the accelerator has this account's public key (SPEC.md §3.6).
    pub published: Published,
}

/// Whether the accelerator has the account's X25519 public key (SPEC.md §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// It has this device's own key.
    Ours,
    /// It has none (an account made before keys were published, signed in without
    /// the password since: `Client.resume`).
    Missing,
    /// It lists another key for this account: never to be used.
    Other,
}

impl Published {
    /// What the accelerator said (`userPublicKey` of a session answer) against this
    /// device's own key.
    pub fn of(published: Option<&str>, ours: &[u8; 32]) -> Self {
        match published {
            None => Published::Missing,
            Some(key) if coffer_core::b64::decode_array::<32>(key).as_ref() == Some(ours) => Published::Ours,
            Some(_) => Published::Other,
        }
    }
}

/// State shared by a `Client` and everything it hands out.
pub struct Session {
    /// Requests to the accelerator, carrying the session token.
    pub http: Rc<Http>,
    /// The signed-in user; `None` for an anonymous or signed-out client.
    user: RefCell<Option<Rc<User>>>,
    /// The app's listeners.
    pub events: Rc<Events>,
    /// The change feed, started by the first listener.
    feed: RefCell<Option<Rc<Feed>>>,
    /// The user's kv sequence number at sign-in: the feed starts after it.
    pub kv_seq: Cell<u64>,
    /// Space keys held by this account, cached.
    pub keyring: Keyring,
    /// The channel to this account's other clients on this origin, while signed in.
    tabs: RefCell<Option<Rc<Tabs>>>,
    /// Offline kv, for a client signed in with `offline: true`.
    offline: RefCell<Option<Rc<Offline>>>,
}

/// Who signed in, as the accelerator (or a remembered session) says.
pub struct SignedIn {
    /// The account's id.
    pub user_id: String,
    /// The username.
    pub username: String,
    /// The session token.
    pub token: String,
    /// The account's kv sequence number: the change feed starts after it.
    pub kv_seq: u64,
    /// The public key the accelerator lists for the account, if any.
    pub user_public_key: Option<String>,
}

/// A `signout` event (`ClientSignOutEvent` in types.d.ts).
#[derive(Serialize)]
struct SignOutView {
    reason: &'static str,
}

impl Session {
    /// A session with nobody signed in yet.
    pub fn new(http: Http) -> Rc<Self> {
        Rc::new(Session {
            http: Rc::new(http),
            user: RefCell::new(None),
            events: Rc::new(Events::default()),
            feed: RefCell::new(None),
            kv_seq: Cell::new(0),
            keyring: Keyring::default(),
            tabs: RefCell::new(None),
            offline: RefCell::new(None),
        })
    }

    /// The signed-in user, or `Unauthorized`.
    pub fn user(&self) -> SdkResult<Rc<User>> {
        self.signed_in_user().ok_or_else(SdkError::signed_out)
    }

    /// Fails unless the accelerator has this account's own public key (SPEC.md
    /// §3.6): what spaces' rosters and proofs of the root name.
    pub fn require_published_key(&self) -> SdkResult<()> {
        match self.user()?.published {
            Published::Ours => Ok(()),
            Published::Missing => Err(SdkError::new(
                ErrorCode::Conflict,
                "this account's public key is not published yet (the account was made before keys were): sign in again with the password, which publishes it",
            )),
            Published::Other => Err(SdkError::new(
                ErrorCode::Integrity,
                "the accelerator lists a public key for this account that is not the account's own: keys sealed to it would not reach you, so it is not used",
            )),
        }
    }

    /// Offline kv, if this client was signed in with it.
    pub fn offline(&self) -> Option<Rc<Offline>> {
        self.offline.borrow().clone()
    }

    /// The signed-in user, if any.
    pub fn signed_in_user(&self) -> Option<Rc<User>> {
        self.user.borrow().clone()
    }

    /// Registers `listener` for `kind` (from `call`, e.g. `"kv.on"`), starting the
    /// change feed if it needs it; returns the function that removes it.
    pub fn listen(self: &Rc<Self>, kind: EventKind, listener: JsValue, call: &str) -> SdkResult<Function> {
        let listener: Function = listener
            .dyn_into()
            .map_err(|_| SdkError::invalid(format!("{call}(event, listener): listener must be a function")))?;
        let id = self.events.add(kind, listener);
        self.ensure_feed();
        let session = Rc::downgrade(self);
        let off = Closure::<dyn FnMut()>::new(move || {
            if let Some(session) = session.upgrade() {
                session.events.remove(id);
                session.stop_feed_if_unheard();
            }
        });
        Ok(off.into_js_value().unchecked_into())
    }

    /// Starts the change feed if it is not running and someone listens to it.
    fn ensure_feed(self: &Rc<Self>) {
        if self.feed.borrow().is_some() || !self.events.wants_feed() {
            return;
        }
        let Some(user) = self.user.borrow().clone() else { return };
        let client: Rc<dyn std::any::Any> = Rc::clone(self) as Rc<dyn std::any::Any>;
        let tabs = self.tabs.borrow().clone();
        let offline = self.offline();
        let feed =
            Feed::start(client, Rc::clone(&self.http), Rc::clone(&self.events), user, tabs, offline, self.kv_seq.get());
        *self.feed.borrow_mut() = Some(feed);
    }

    /// Stops the change feed once nobody listens, keeping its position so a later
    /// listener resumes where it stopped.
    pub fn stop_feed_if_unheard(&self) {
        if self.events.wants_feed() {
            return;
        }
        if let Some(feed) = self.feed.borrow_mut().take() {
            self.kv_seq.set(feed.last_seq());
            feed.stop();
        }
    }

    /// Signs `user_id` in with its session token and root secret, and joins the
    /// account's other clients on this origin. With `offline` (offline kv), whether
    /// the accelerator answered as it signed in.
    pub fn sign_in_as(self: &Rc<Self>, signed: SignedIn, root: RootSecret, offline: Option<bool>) {
        let SignedIn { user_id, username, token, kv_seq, user_public_key } = signed;
        self.http.set_token(Some(token));
        self.kv_seq.set(kv_seq);
        let device = DeviceKeys::derive(&root);
        let owner = device.owner();
        let kv = KvKeys::derive(&root);
        let names = NameKeys::derive(&root);
        let identity = UserKeys::derive(&root);
        let published = Published::of(user_public_key.as_deref(), &identity.public_key());
        let legacy = LegacyNames::default();
        let user = Rc::new(User { user_id, username, root, kv, names, legacy, device, identity, published });
        *self.user.borrow_mut() = Some(Rc::clone(&user));
        LegacyNames::start(&self.http, &user);
        *self.offline.borrow_mut() =
            offline.map(|online| Offline::start(Rc::clone(&self.http), Rc::clone(&self.events), user, online));
        let session = Rc::downgrade(self);
        let tabs = Tabs::open(owner, move |message| {
            if let Some(session) = session.upgrade() {
                session.on_tab_message(message);
            }
        });
        *self.tabs.borrow_mut() = Some(Rc::new(tabs));
    }

    fn on_tab_message(&self, message: TabMessage) {
        match message {
            TabMessage::SignedOut { session } => self.signed_out_elsewhere(&session),
            message => {
                let feed = self.feed.borrow().clone();
                if let Some(feed) = feed {
                    feed.on_tab_message(message);
                }
            }
        }
    }

    /// Signs out on this device and tells the account's other clients here to do the
    /// same: no user, no feed, no cached keys, nothing remembered.
    pub fn forget(&self) {
        if let (Some(tabs), Some(token)) = (self.tabs.borrow().as_ref(), self.http.token()) {
            tabs.post(&TabMessage::SignedOut { session: tabs::session_tag(&token) });
        }
        self.forget_here();
    }

    /// Another client of the account signed out (revoking the session tagged
    /// `revoked`): this one revokes its own session too if it is another sign-in,
    /// forgets, and tells the app.
    fn signed_out_elsewhere(&self, revoked: &str) {
        let Some(token) = self.http.token() else { return };
        if tabs::session_tag(&token) != revoked {
            if let Ok(revoke) = Http::new(self.http.base()) {
                revoke.set_token(Some(token));
                spawn_local(async move {
                    // Unreachable: signed out here anyway; the session expires on its own.
                    let _: SdkResult<()> = revoke.post_empty("/v1/auth/signout", &()).await;
                });
            }
        }
        self.forget_here();
        self.events.emit(EventKind::SignOut, to_js(&SignOutView { reason: "another-tab" }));
    }

    fn forget_here(&self) {
        if let Some(feed) = self.feed.borrow_mut().take() {
            feed.stop();
        }
        if let Some(offline) = self.offline.borrow_mut().take() {
            offline.stop();
        }
        *self.user.borrow_mut() = None;
        self.tabs.borrow_mut().take();
        self.keyring.clear();
        self.http.set_token(None);
        remember::clear(self.http.base());
    }
}

/// Runs an SDK future as a JS Promise whose rejections are `CofferError`s.
pub fn promise<T: Into<JsValue>>(future: impl Future<Output = SdkResult<T>> + 'static) -> Promise {
    future_to_promise(async move { future.await.map(Into::into).map_err(Into::into) })
}

/// A rejected Promise, for input refused before any work starts.
pub fn rejected(error: SdkError) -> Promise {
    Promise::reject(&error.into())
}

/// The shape of every async method: the arguments are checked (and copied out of
/// the caller's objects) now, the rest runs as a Promise; a refusal of either kind
/// rejects it with a `CofferError`.
pub fn call<P, F, Fut>(session: &Rc<Session>, checked: SdkResult<P>, run: F) -> Promise
where
    F: FnOnce(Rc<Session>, P) -> Fut,
    Fut: Future<Output = SdkResult<JsValue>> + 'static,
{
    match checked {
        Ok(args) => promise(run(Rc::clone(session), args)),
        Err(e) => rejected(e),
    }
}
