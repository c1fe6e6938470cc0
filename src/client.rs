//! `Client`: one signed-in user (or an anonymous reader) against one accelerator.

use std::rc::Rc;

use coffer_core::ErrorCode;
use coffer_core::account::RootSecret;
use coffer_core::b64;
use coffer_core::proto::{SessionInfo, SessionResponse};
use js_sys::{Function, Promise};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::auth;
use crate::error::{SdkError, SdkResult};
use crate::events::EventKind;
use crate::http::Http;
use crate::kv::Kv;
use crate::options::{self, Flag, Text, string_arg};
use crate::remember::{self, Remember, Saved};
use crate::session::{Session, SignedIn, promise, rejected};
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
    /// `{ url, offline? }`
    #[wasm_bindgen(typescript_type = "ResumeOptions")]
    pub type ResumeOptions;
    /// `{ currentPassword, newPassword }`
    #[wasm_bindgen(typescript_type = "ChangePasswordOptions")]
    pub type ChangePasswordOptions;
    /// `{ url, username, recoveryCode, newPassword, remember?, offline? }`
    #[wasm_bindgen(typescript_type = "RecoverOptions")]
    pub type RecoverOptions;
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
    session: Rc<Session>,
}

/// `{ url, username, password, remember?, offline? }` of `signUp` and `signIn`.
#[derive(Deserialize)]
struct Credentials {
    url: Text,
    username: Text,
    password: Text,
    remember: Option<Remember>,
    offline: Option<Flag>,
}

/// `{ url, username, recoveryCode, newPassword, remember?, offline? }` of `recover`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recover {
    url: Text,
    username: Text,
    recovery_code: Text,
    new_password: Text,
    remember: Option<Remember>,
    offline: Option<Flag>,
}

/// `{ url, offline? }` of `resume`.
#[derive(Deserialize)]
struct Resume {
    url: Text,
    offline: Option<Flag>,
}

/// `{ url }` of `resume` and `anonymous`.
#[derive(Deserialize)]
struct Url {
    url: Text,
}

/// `{ currentPassword, newPassword }` of `changePassword`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangePassword {
    current_password: Text,
    new_password: Text,
}

/// The credentials, with the accelerator's URL checked.
fn credentials(options: &JsValue, what: &str) -> SdkResult<(Http, Credentials)> {
    let credentials: Credentials = options::read(options, what)?;
    Ok((Http::new(&credentials.url.0)?, credentials))
}

/// The accelerator named by `{ url }`.
fn url_option(options: &JsValue, what: &str) -> SdkResult<Http> {
    let Url { url } = options::read(options, what)?;
    Http::new(&url.0)
}

impl Client {
    fn from_session(
        http: Http,
        answer: SessionResponse,
        root: RootSecret,
        remember: Option<Remember>,
        offline: Option<&Flag>,
    ) -> SdkResult<Client> {
        let offline = offline.is_some_and(|Flag(on)| *on);
        let saved = Saved {
            v: 1,
            user_id: answer.user_id.clone(),
            username: answer.username.clone(),
            token: answer.token.clone(),
            root: b64::encode(root.as_bytes()),
            offline,
            kv_seq: answer.kv_seq,
        };
        remember::save(remember.unwrap_or_default(), http.base(), &saved)?;
        let session = Session::new(http);
        let signed = SignedIn {
            user_id: answer.user_id,
            username: answer.username,
            token: answer.token,
            kv_seq: answer.kv_seq,
            user_public_key: answer.user_public_key,
        };
        session.sign_in_as(signed, root, offline.then_some(true));
        Ok(Client { session })
    }

    /// Shared state, for the other JS classes.
    pub fn session(&self) -> &Rc<Session> {
        &self.session
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
        let (http, c) = credentials(&options, "signUp options")?;
        let (session, root) = auth::sign_up(&http, &c.username.0, &c.password.0).await?;
        Ok(Client::from_session(http, session, root, c.remember, c.offline.as_ref())?)
    }

    /// Signs in to an existing account, on this or any device.
    ///
    /// Rejects with `Unauthorized` for a wrong username or password (the two are not
    /// told apart).
    #[wasm_bindgen(js_name = signIn)]
    pub async fn sign_in(options: CredentialsOptions) -> Result<Client, JsValue> {
        let (http, c) = credentials(&options, "signIn options")?;
        let (session, root) = auth::sign_in(&http, &c.username.0, &c.password.0).await?;
        Ok(Client::from_session(http, session, root, c.remember, c.offline.as_ref())?)
    }

    /// Recovers an account whose password is forgotten, with a recovery code made by
    /// `createRecoveryCode`: sets `newPassword` and signs in (taking `remember` and
    /// `offline` as `signIn` does). Every other session of the account is signed out;
    /// the data, and the code, stay as they were.
    ///
    /// Rejects with `InvalidInput` for a code that is mistyped (its checksum catches
    /// it before anything is sent), `Unauthorized` for a wrong username or code (the
    /// two are not told apart), `RateLimited` after too many tries.
    pub async fn recover(options: RecoverOptions) -> Result<Client, JsValue> {
        let r: Recover = options::read(&options, "recover options")?;
        let http = Http::new(&r.url.0)?;
        let (session, root) = auth::recover(&http, &r.username.0, &r.recovery_code.0, &r.new_password.0).await?;
        Ok(Client::from_session(http, session, root, r.remember, r.offline.as_ref())?)
    }

    /// Picks up a session remembered by `signIn`/`signUp` (`remember: "session"` or
    /// `"local"`) for this URL. Resolves to `null` when there is none, or when the
    /// accelerator no longer accepts it (expired, signed out elsewhere). A session
    /// signed in with `offline: true` resumes even while the accelerator cannot be
    /// reached (offline); `offline` here turns offline kv on or off for this client.
    #[wasm_bindgen(unchecked_return_type = "Promise<Client | null>")]
    pub async fn resume(options: ResumeOptions) -> Result<JsValue, JsValue> {
        let Resume { url, offline } = options::read(&options, "resume options")?;
        let http = Http::new(&url.0)?;
        let Some((_, saved)) = remember::load(http.base()) else {
            return Ok(JsValue::NULL);
        };
        let Some(root) = saved.root() else {
            remember::clear(http.base());
            return Ok(JsValue::NULL);
        };
        let offline = offline.map_or(saved.offline, |Flag(on)| on);
        http.set_token(Some(saved.token.clone()));
        let session = Session::new(http);
        let signed = match session.http.get::<SessionInfo>("/v1/auth/session").await {
            Ok(info) if info.user_id == saved.user_id => SignedIn {
                user_id: info.user_id,
                username: info.username,
                token: saved.token,
                kv_seq: info.kv_seq,
                user_public_key: info.user_public_key,
            },
            Ok(_) => {
                remember::clear(session.http.base());
                return Ok(JsValue::NULL);
            }
            Err(e) if e.code == ErrorCode::Unauthorized => {
                remember::clear(session.http.base());
                return Ok(JsValue::NULL);
            }
            // Offline: the session is checked once the accelerator answers again.
            Err(e) if e.code == ErrorCode::Network && offline => {
                let Saved { user_id, username, token, kv_seq, .. } = saved;
                let signed = SignedIn { user_id, username, token, kv_seq, user_public_key: None };
                session.sign_in_as(signed, root, Some(false));
                return Ok(Client { session }.into());
            }
            Err(e) => return Err(e.into()),
        };
        session.sign_in_as(signed, root, offline.then_some(true));
        Ok(Client { session }.into())
    }

    /// A client with no account, for reading shared files by manifest.
    pub async fn anonymous(options: UrlOptions) -> Result<Client, JsValue> {
        let http = url_option(&options, "anonymous options")?;
        Ok(Client { session: Session::new(http) })
    }

    /// Signs out: forgets the session on this device (memory and storage), stops the
    /// change feed and revokes the session token on the accelerator. Rejects with
    /// `Network` if the accelerator could not be told; the device is signed out anyway.
    #[wasm_bindgen(js_name = signOut, unchecked_return_type = "Promise<void>")]
    pub fn sign_out(&self) -> Promise {
        let session = Rc::clone(&self.session);
        promise(async move {
            if session.signed_in_user().is_none() {
                return Ok(JsValue::UNDEFINED);
            }
            // Forgotten here first, so that nothing on this device uses the session
            // once it is being revoked: no call, and no reload that resumes it.
            let revoke = Http::new(session.http.base())?;
            revoke.set_token(session.http.token());
            session.forget();
            let result: SdkResult<()> = revoke.post_empty("/v1/auth/signout", &()).await;
            match result {
                Err(e) if e.code == ErrorCode::Network => Err(SdkError::network(format!(
                    "signed out on this device, but the accelerator could not be told to revoke the session: {}",
                    e.message
                ))),
                _ => Ok(JsValue::UNDEFINED),
            }
        })
    }

    /// Listens for `"signout"`: the account signed out in another tab (or another
    /// client) on this origin, so this client is signed out too. Returns a function
    /// that stops listening.
    #[wasm_bindgen(unchecked_return_type = "Unsubscribe")]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "\"signout\"")] event: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(event: ClientSignOutEvent) => void")] listener: JsValue,
    ) -> Result<Function, JsValue> {
        let kind = EventKind::parse_client(&string_arg(&event, "event")?)?;
        Ok(self.session.listen(kind, listener, "client.on")?)
    }

    /// Changes the password. The root secret (and so all data) stays the same; it is
    /// rewrapped under the new password. Other sessions of the account are revoked.
    #[wasm_bindgen(js_name = changePassword, unchecked_return_type = "Promise<void>")]
    pub fn change_password(&self, options: ChangePasswordOptions) -> Promise {
        let session = Rc::clone(&self.session);
        let ChangePassword { current_password: Text(current), new_password: Text(new) } =
            match options::read(&options, "changePassword options") {
                Ok(parsed) => parsed,
                Err(e) => return rejected(e),
            };
        promise(async move {
            let user = session.user()?;
            auth::change_password(&session.http, &user.username, &user.root, &current, &new).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Makes a recovery code: 36 letters and digits in groups of four, which with the
    /// username can set a new password if this one is forgotten (`Client.recover`).
    /// Show it to the user to print or write down; it is not kept anywhere but with
    /// them (the accelerator keeps only what checks it). A new code replaces the last.
    #[wasm_bindgen(js_name = createRecoveryCode, unchecked_return_type = "Promise<string>")]
    pub fn create_recovery_code(&self) -> Promise {
        let session = Rc::clone(&self.session);
        promise(async move {
            let user = session.user()?;
            session.require_published_key()?;
            let code = auth::create_recovery_code(&session.http, &user.username, &user.root, &user.identity).await?;
            Ok(JsValue::from(code.as_str()))
        })
    }

    /// The per-user encrypted key/value store.
    #[wasm_bindgen(getter)]
    pub fn kv(&self) -> Kv {
        Kv::new(Rc::clone(&self.session))
    }

    /// File storage: files of any size in shared spaces.
    #[wasm_bindgen(getter)]
    pub fn storage(&self) -> Storage {
        Storage::new(Rc::clone(&self.session))
    }

    /// Shared spaces: create, invite, join.
    #[wasm_bindgen(getter)]
    pub fn space(&self) -> Spaces {
        Spaces::new(Rc::clone(&self.session))
    }

    /// The signed-in username, or `null` for an anonymous or signed-out client.
    #[wasm_bindgen(getter, unchecked_return_type = "string | null")]
    pub fn username(&self) -> JsValue {
        self.session.signed_in_user().map_or(JsValue::NULL, |u| u.username.as_str().into())
    }

    /// The signed-in account's id, or `null`.
    #[wasm_bindgen(getter, js_name = userId, unchecked_return_type = "string | null")]
    pub fn user_id(&self) -> JsValue {
        self.session.signed_in_user().map_or(JsValue::NULL, |u| u.user_id.as_str().into())
    }

    /// The accelerator URL this client talks to.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.session.http.base().to_owned()
    }
}
