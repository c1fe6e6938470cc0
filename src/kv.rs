//! `client.kv`: get / set / delete / list and the change feed's listeners.

use std::rc::Rc;

use coffer_core::kv::KvScope;
use coffer_core::names;
use coffer_core::offline::QueuedWrite;
use coffer_core::proto::answer::PageWalk;
use coffer_core::proto::{
    ChangeEvent, KvDeleteResponse, KvGetResponse, KvKeyRequest, KvListRequest, KvListResponse, KvSetRequest, KvValue,
    KvWriteResponse, PageQuery,
};
use coffer_core::{Coded, validate};
use js_sys::{Array, Function, Promise};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::error::{SdkError, SdkResult};
use crate::events::EventKind;
use crate::http::Http;
use crate::json;
use crate::legacy_names::LegacyNames;
use crate::options::{self, Flag, string_arg};
use crate::random;
use crate::session::{Session, User, call};

/// The per-user encrypted key/value store (`client.kv`). Typed in the `.d.ts` by
/// the `Kv` interface in `types.d.ts`.
#[wasm_bindgen]
pub struct Kv {
    session: Rc<Session>,
}

/// `{ encrypt? }` of `set`.
#[derive(Deserialize)]
struct SetOptions {
    encrypt: Option<Flag>,
}

/// A collection and id from JS arguments, checked.
fn key(collection: &JsValue, id: &JsValue) -> SdkResult<(String, String)> {
    let collection = string_arg(collection, "collection")?;
    validate::collection(&collection)?;
    let id = string_arg(id, "id")?;
    validate::id(&id)?;
    Ok((collection, id))
}

impl Kv {
    /// A handle on the client's store.
    pub fn new(session: Rc<Session>) -> Self {
        Kv { session }
    }
}

// The store's operations on already-checked names, for the public methods below,
// for offline kv (which queues values already sealed) and for the SDK's own `$`
// collections (`$spaces`, `$files`). Each sends the names sealed (SPEC.md §4.4),
// and first waits for the account's keys stored under plaintext names to be moved
// to theirs.

/// A key as the accelerator knows it: its collection's and its id's sealed names.
fn sealed_key(user: &User, collection: &str, id: &str) -> KvKeyRequest {
    KvKeyRequest { collection: user.names.seal_collection(collection), id: user.names.seal_id(collection, id) }
}

/// Stores a value already sealed (or MAC'd); its sequence number.
pub(crate) async fn store_value(
    http: &Rc<Http>,
    user: &Rc<User>,
    collection: &str,
    id: &str,
    value: KvValue,
) -> SdkResult<u64> {
    LegacyNames::settled(http, user).await?;
    let KvKeyRequest { collection, id } = sealed_key(user, collection, id);
    let answer: KvWriteResponse = http.post("/v1/kv/set", &KvSetRequest { collection, id, value }).await?;
    Ok(answer.seq)
}

/// The value stored under a key as the accelerator holds it (unopened).
pub(crate) async fn fetch_value(
    http: &Rc<Http>,
    user: &Rc<User>,
    collection: &str,
    id: &str,
) -> SdkResult<Option<KvValue>> {
    LegacyNames::settled(http, user).await?;
    let found: KvGetResponse = http.post("/v1/kv/get", &sealed_key(user, collection, id)).await?;
    Ok(found.value)
}

/// Deletes a key.
pub(crate) async fn delete_key(
    http: &Rc<Http>,
    user: &Rc<User>,
    collection: &str,
    id: &str,
) -> SdkResult<KvDeleteResponse> {
    LegacyNames::settled(http, user).await?;
    http.post("/v1/kv/delete", &sealed_key(user, collection, id)).await
}

/// The ids of a collection, opened and sorted.
pub(crate) async fn list_ids(http: &Rc<Http>, user: &Rc<User>, collection: &str) -> SdkResult<Vec<String>> {
    LegacyNames::settled(http, user).await?;
    let sealed = user.names.seal_collection(collection);
    let (mut ids, mut pages) = (Vec::new(), PageWalk::default());
    while let Some(after) = pages.next_after() {
        let page = PageQuery { after: after.map(str::to_owned), limit: None };
        let request = KvListRequest { collection: sealed.clone(), page };
        let answer: KvListResponse = http.post("/v1/kv/list", &request).await?;
        pages.answered(answer.ids.len(), answer.next)?;
        for id in answer.ids {
            let opened = user.names.open_id(collection, &id).map_err(|e| {
                SdkError::new(
                    e.code(),
                    format!("the accelerator listed an id in {collection} that this account never sealed: {e}"),
                )
            })?;
            ids.push(opened);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Opens the names of a change from the feed in place. A collection without a sealed
/// name's shape is a legacy plaintext name (a change logged before the account's
/// keys moved, or written since by an older SDK), kept as it is; a sealed one that
/// does not open, or an id that does not, is `Integrity`.
pub(crate) fn open_names(user: &User, change: &mut ChangeEvent) -> SdkResult<()> {
    if !names::looks_sealed(&change.collection) {
        return Ok(());
    }
    change.collection = user.names.open_collection(&change.collection)?;
    change.id = user.names.open_id(&change.collection, &change.id)?;
    Ok(())
}

/// Seals (or MACs) JSON text for a key.
fn encode(user: &User, collection: &str, id: &str, json: &str, encrypt: bool) -> KvValue {
    let scope = KvScope { user_id: &user.user_id, collection, id };
    user.kv.encode(&scope, json, encrypt, random::bytes())
}

/// Seals (or MACs) JSON text and stores it.
pub(crate) async fn put(session: &Session, collection: String, id: String, json: &str, encrypt: bool) -> SdkResult<()> {
    let user = session.user()?;
    let value = encode(&user, &collection, &id, json, encrypt);
    store_value(&session.http, &user, &collection, &id, value).await.map(drop)
}

/// The JSON text stored under a key, authenticated; `None` if there is none.
pub(crate) async fn fetch(session: &Session, collection: String, id: String) -> SdkResult<Option<String>> {
    let user = session.user()?;
    let Some(value) = fetch_value(&session.http, &user, &collection, &id).await? else { return Ok(None) };
    let scope = KvScope { user_id: &user.user_id, collection: &collection, id: &id };
    Ok(Some(user.kv.decode(&scope, &value)?))
}

/// Deletes a key; whether it existed.
pub(crate) async fn remove(session: &Session, collection: String, id: String) -> SdkResult<bool> {
    let user = session.user()?;
    Ok(delete_key(&session.http, &user, &collection, &id).await?.existed)
}

/// The ids of a collection, sorted.
pub(crate) async fn ids(session: &Session, collection: String) -> SdkResult<Vec<String>> {
    let user = session.user()?;
    list_ids(&session.http, &user, &collection).await
}

#[wasm_bindgen]
impl Kv {
    /// Stores a JSON value, sealed unless `{ encrypt: false }`.
    #[wasm_bindgen(skip_typescript)]
    pub fn set(&self, collection: JsValue, id: JsValue, value: JsValue, options: Option<JsValue>) -> Promise {
        let prepared = (|| {
            let (collection, id) = key(&collection, &id)?;
            let SetOptions { encrypt } = options::read_optional(options, "kv.set options")?;
            let encrypt = encrypt.is_none_or(|Flag(encrypt)| encrypt);
            let text = json::stringify(&value)?;
            validate::value_json(&text)?;
            Ok::<_, SdkError>((collection, id, encrypt, text))
        })();
        call(&self.session, prepared, move |session, (collection, id, encrypt, text)| async move {
            match session.offline() {
                Some(offline) => {
                    let value = Some(encode(&*session.user()?, &collection, &id, &text, encrypt));
                    offline.write(QueuedWrite { collection, id, value }).await?;
                }
                None => put(&session, collection, id, &text, encrypt).await?,
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Reads a value (decrypting it here), or `null` if there is none.
    #[wasm_bindgen(skip_typescript)]
    pub fn get(&self, collection: JsValue, id: JsValue) -> Promise {
        call(&self.session, key(&collection, &id), move |session, (collection, id)| async move {
            let found = match session.offline() {
                Some(offline) => offline.get(collection, id).await?,
                None => fetch(&session, collection, id).await?,
            };
            match found {
                Some(text) => json::parse(&text),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Deletes a value; resolves to whether it existed.
    #[wasm_bindgen(skip_typescript)]
    pub fn delete(&self, collection: JsValue, id: JsValue) -> Promise {
        call(&self.session, key(&collection, &id), move |session, (collection, id)| async move {
            let existed = match session.offline() {
                Some(offline) => offline.write(QueuedWrite { collection, id, value: None }).await?,
                None => remove(&session, collection, id).await?,
            };
            Ok(JsValue::from_bool(existed))
        })
    }

    /// The ids in a collection, sorted.
    #[wasm_bindgen(skip_typescript)]
    pub fn list(&self, collection: JsValue) -> Promise {
        call(
            &self.session,
            string_arg(&collection, "collection").and_then(|c| {
                validate::collection(&c)?;
                Ok(c)
            }),
            move |session, collection| async move {
                let ids = match session.offline() {
                    Some(offline) => offline.list(collection).await?,
                    None => ids(&session, collection).await?,
                };
                Ok(JsValue::from(ids.into_iter().map(JsValue::from).collect::<Array>()))
            },
        )
    }

    /// How many writes wait for the accelerator (always 0 without `offline: true`).
    #[wasm_bindgen(skip_typescript)]
    pub fn pending(&self) -> Promise {
        call(&self.session, self.session.user().map(drop), move |session, ()| async move {
            let n = match session.offline() {
                Some(offline) => offline.pending().await?,
                None => 0,
            };
            Ok(JsValue::from(n))
        })
    }

    /// Listens for `"change"`, `"resync"` or (offline kv) `"status"`; returns a
    /// function that stops listening. A `status` listener is told the current status
    /// at once.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: JsValue, listener: JsValue) -> Result<Function, JsValue> {
        let kind = EventKind::parse_kv(&string_arg(&event, "event")?)?;
        self.session.user()?;
        let offline = self.session.offline();
        if kind == EventKind::Status && offline.is_none() {
            return Err(SdkError::invalid("kv.on(\"status\") needs offline kv: sign in with { offline: true }").into());
        }
        let callback = listener.clone();
        let off = self.session.listen(kind, listener, "kv.on")?;
        if let (EventKind::Status, Some(offline)) = (kind, offline) {
            self.session.events.tell(callback.unchecked_into(), offline.status());
        }
        Ok(off)
    }
}
