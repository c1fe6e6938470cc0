//! `Client`: one signed-in user (or an anonymous reader) against one accelerator.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use coffer_core::ErrorCode;
use coffer_core::account::RootSecret;
use coffer_core::b64;
use coffer_core::kv::KvKeys;
use coffer_core::proto::{SessionInfo, SessionResponse};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::auth;
use crate::error::{SdkError, SdkResult};
use crate::events::Events;
use crate::feed::Feed;
use crate::http::Http;
use crate::keyring::Keyring;
use crate::kv::Kv;
use crate::options::Options;
use crate::remember::{self, Remember, Saved};
use crate::spaces::Spaces;
use crate::storage::Storage;

#[wasm_bindgen]
extern "C" {
    /// `{ url, username, password, remember? }`
    #[wasm_bindgen(typescript_type = "CredentialsOptions")]
    pub type CredentialsOptions;
    /// `{ url }`
    #[wasm_bindgen(typescript_type = "UrlOptions")]
    pub type UrlOptions;
    /// `{ currentPassword, newPassword }`
    #[wasm_bindgen(typescript_type = "ChangePasswordOptions")]
    pub type ChangePasswordOptions;
}

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
}

/// State shared by a `Client` and everything it hands out (`kv`, the feed).
pub struct Inner {
    /// Requests to the accelerator, carrying the session token.
    pub http: Http,
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
}

impl Inner {
    fn new(http: Http) -> Rc<Self> {
        Rc::new(Inner {
            http,
            user: RefCell::new(None),
            events: Rc::new(Events::default()),
            feed: RefCell::new(None),
            kv_seq: Cell::new(0),
            keyring: Keyring::default(),
        })
    }

    /// The signed-in user, or `Unauthorized`.
    pub fn user(&self) -> SdkResult<Rc<User>> {
        self.user.borrow().clone().ok_or_else(SdkError::signed_out)
    }

    /// Starts the change feed if it is not running.
    pub fn ensure_feed(self: &Rc<Self>) {
        if self.feed.borrow().is_some() || self.user.borrow().is_none() {
            return;
        }
        let feed = Feed::start(Rc::clone(self), self.kv_seq.get());
        *self.feed.borrow_mut() = Some(feed);
    }

    /// Stops the change feed once nobody listens, keeping its position so a later
    /// listener resumes where it stopped.
    pub fn stop_feed_if_unheard(&self) {
        if self.events.has_any() {
            return;
        }
        if let Some(feed) = self.feed.borrow_mut().take() {
            self.kv_seq.set(feed.last_seq());
            feed.stop();
        }
    }

    fn sign_in_as(&self, user_id: String, username: String, token: String, root: RootSecret, kv_seq: u64) {
        self.http.set_token(Some(token));
        self.kv_seq.set(kv_seq);
        let kv = KvKeys::derive(&root);
        *self.user.borrow_mut() = Some(Rc::new(User { user_id, username, root, kv }));
    }

    fn forget(&self) {
        if let Some(feed) = self.feed.borrow_mut().take() {
            feed.stop();
        }
        *self.user.borrow_mut() = None;
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
pub fn call<P, F, Fut>(inner: &Rc<Inner>, checked: SdkResult<P>, run: F) -> Promise
where
    F: FnOnce(Rc<Inner>, P) -> Fut,
    Fut: Future<Output = SdkResult<JsValue>> + 'static,
{
    match checked {
        Ok(args) => promise(run(Rc::clone(inner), args)),
        Err(e) => rejected(e),
    }
}

/// A Coffer client: sign a user in, then use `client.kv`.
///
/// @example
/// ```js
/// import init, { Client } from "coffer";
/// await init();
/// const client = await Client.signUp({ url: "http://127.0.0.1:8080", username: "ada", password: "correct horse" });
/// await client.kv.set("todos", "t1", { title: "Ship docs", done: false });
/// ```
#[wasm_bindgen]
pub struct Client {
    inner: Rc<Inner>,
}

struct Credentials {
    http: Http,
    username: String,
    password: String,
    remember: Remember,
}

fn credentials(options: &JsValue, what: &'static str) -> SdkResult<Credentials> {
    let options = Options::new(options, what)?;
    Ok(Credentials {
        http: Http::new(&options.string("url")?)?,
        username: options.string("username")?,
        password: options.string("password")?,
        remember: Remember::parse(options.optional_string("remember")?.as_deref())?,
    })
}

impl Client {
    fn from_session(http: Http, session: SessionResponse, root: RootSecret, keep: Remember) -> SdkResult<Client> {
        let saved = Saved {
            v: 1,
            user_id: session.user_id.clone(),
            username: session.username.clone(),
            token: session.token.clone(),
            root: b64::encode(root.as_bytes()),
        };
        remember::save(keep, http.base(), &saved)?;
        let inner = Inner::new(http);
        inner.sign_in_as(session.user_id, session.username, session.token, root, session.kv_seq);
        Ok(Client { inner })
    }

    /// Shared state, for the other JS classes.
    pub fn inner(&self) -> &Rc<Inner> {
        &self.inner
    }
}

#[wasm_bindgen]
impl Client {
    /// Creates an account and signs it in. The password never leaves this device:
    /// it is stretched with Argon2id here (about half a second) and only a public
    /// key and the wrapped root secret reach the accelerator.
    ///
    /// Rejects with `Conflict` if the username is taken, `InvalidInput` for a bad
    /// username or options, `Network` if the accelerator cannot be reached.
    #[wasm_bindgen(js_name = signUp)]
    pub async fn sign_up(options: CredentialsOptions) -> Result<Client, JsValue> {
        let c = credentials(&options, "signUp options")?;
        let (session, root) = auth::sign_up(&c.http, &c.username, &c.password).await?;
        Ok(Client::from_session(c.http, session, root, c.remember)?)
    }

    /// Signs in to an existing account, on this or any device.
    ///
    /// Rejects with `Unauthorized` for a wrong username or password (the two are not
    /// told apart).
    #[wasm_bindgen(js_name = signIn)]
    pub async fn sign_in(options: CredentialsOptions) -> Result<Client, JsValue> {
        let c = credentials(&options, "signIn options")?;
        let (session, root) = auth::sign_in(&c.http, &c.username, &c.password).await?;
        Ok(Client::from_session(c.http, session, root, c.remember)?)
    }

    /// Picks up a session remembered by `signIn`/`signUp` (`remember: "session"` or
    /// `"local"`) for this URL. Resolves to `null` when there is none, or when the
    /// accelerator no longer accepts it (expired, signed out elsewhere).
    #[wasm_bindgen(unchecked_return_type = "Promise<Client | null>")]
    pub async fn resume(options: UrlOptions) -> Result<JsValue, JsValue> {
        let options = Options::new(&options, "resume options")?;
        let http = Http::new(&options.string("url")?)?;
        let Some((_, saved)) = remember::load(http.base()) else {
            return Ok(JsValue::NULL);
        };
        let Some(root) = saved.root() else {
            remember::clear(http.base());
            return Ok(JsValue::NULL);
        };
        http.set_token(Some(saved.token.clone()));
        let info: SessionInfo = match http.get("/v1/auth/session").await {
            Ok(info) => info,
            Err(e) if e.code == ErrorCode::Unauthorized => {
                remember::clear(http.base());
                return Ok(JsValue::NULL);
            }
            Err(e) => return Err(e.into()),
        };
        if info.user_id != saved.user_id {
            remember::clear(http.base());
            return Ok(JsValue::NULL);
        }
        let inner = Inner::new(http);
        inner.sign_in_as(info.user_id, info.username, saved.token, root, info.kv_seq);
        Ok(Client { inner }.into())
    }

    /// A client with no account, for reading shared files by manifest.
    pub async fn anonymous(options: UrlOptions) -> Result<Client, JsValue> {
        let options = Options::new(&options, "anonymous options")?;
        let http = Http::new(&options.string("url")?)?;
        Ok(Client { inner: Inner::new(http) })
    }

    /// Signs out: forgets the session on this device (memory and storage), stops the
    /// change feed and revokes the session token on the accelerator. Rejects with
    /// `Network` if the accelerator could not be told; the device is signed out anyway.
    #[wasm_bindgen(js_name = signOut, unchecked_return_type = "Promise<void>")]
    pub fn sign_out(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        promise(async move {
            let was_signed_in = inner.user.borrow().is_some();
            if !was_signed_in {
                return Ok(JsValue::UNDEFINED);
            }
            let result: SdkResult<()> = inner.http.post_empty("/v1/auth/signout", &()).await;
            inner.forget();
            match result {
                Err(e) if e.code == ErrorCode::Network => Err(SdkError::network(format!(
                    "signed out on this device, but the accelerator could not be told to revoke the session: {}",
                    e.message
                ))),
                _ => Ok(JsValue::UNDEFINED),
            }
        })
    }

    /// Changes the password. The root secret (and so all data) stays the same; it is
    /// rewrapped under the new password. Other sessions of the account are revoked.
    #[wasm_bindgen(js_name = changePassword, unchecked_return_type = "Promise<void>")]
    pub fn change_password(&self, options: ChangePasswordOptions) -> Promise {
        let inner = Rc::clone(&self.inner);
        let parsed = Options::new(&options, "changePassword options")
            .and_then(|o| Ok((o.string("currentPassword")?, o.string("newPassword")?)));
        let (current, new) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(e),
        };
        promise(async move {
            let user = inner.user()?;
            auth::change_password(&inner.http, &user.username, &user.root, &current, &new).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The per-user encrypted key/value store.
    #[wasm_bindgen(getter)]
    pub fn kv(&self) -> Kv {
        Kv::new(Rc::clone(&self.inner))
    }

    /// File storage: files of any size in shared spaces.
    #[wasm_bindgen(getter)]
    pub fn storage(&self) -> Storage {
        Storage::new(Rc::clone(&self.inner))
    }

    /// Shared spaces: create, invite, join.
    #[wasm_bindgen(getter)]
    pub fn space(&self) -> Spaces {
        Spaces::new(Rc::clone(&self.inner))
    }

    /// The signed-in username, or `null` for an anonymous or signed-out client.
    #[wasm_bindgen(getter, unchecked_return_type = "string | null")]
    pub fn username(&self) -> JsValue {
        self.inner.user.borrow().as_ref().map_or(JsValue::NULL, |u| u.username.as_str().into())
    }

    /// The signed-in account's id, or `null`.
    #[wasm_bindgen(getter, js_name = userId, unchecked_return_type = "string | null")]
    pub fn user_id(&self) -> JsValue {
        self.inner.user.borrow().as_ref().map_or(JsValue::NULL, |u| u.user_id.as_str().into())
    }

    /// The accelerator URL this client talks to.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.inner.http.base().to_owned()
    }
}
