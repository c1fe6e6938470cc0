//! `client.kv`: get / set / delete / list and the change feed's listeners.

use std::rc::Rc;

use coffer_core::kv::KvScope;
use coffer_core::proto::answer::PageWalk;
use coffer_core::proto::{
    KvDeleteResponse, KvGetResponse, KvKeyRequest, KvListRequest, KvListResponse, KvSetRequest, KvWriteResponse,
    PageQuery,
};
use coffer_core::validate;
use js_sys::{Array, Function, Promise};
use serde::Deserialize;
use wasm_bindgen::prelude::*;

use crate::error::{SdkError, SdkResult};
use crate::events::EventKind;
use crate::json;
use crate::options::{self, Flag, string_arg};
use crate::random;
use crate::session::{Session, call};

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

// The store's operations on already-checked names, for the public methods below and
// for the SDK's own `$` collections (`$spaces`, `$files`).

/// Seals (or MACs) JSON text and stores it.
pub(crate) async fn put(session: &Session, collection: String, id: String, json: &str, encrypt: bool) -> SdkResult<()> {
    let user = session.user()?;
    let scope = KvScope { user_id: &user.user_id, collection: &collection, id: &id };
    let value = user.kv.encode(&scope, json, encrypt, random::bytes());
    let _: KvWriteResponse = session.http.post("/v1/kv/set", &KvSetRequest { collection, id, value }).await?;
    Ok(())
}

/// The JSON text stored under a key, authenticated; `None` if there is none.
pub(crate) async fn fetch(session: &Session, collection: String, id: String) -> SdkResult<Option<String>> {
    let user = session.user()?;
    let request = KvKeyRequest { collection, id };
    let found: KvGetResponse = session.http.post("/v1/kv/get", &request).await?;
    let Some(value) = found.value else { return Ok(None) };
    let scope = KvScope { user_id: &user.user_id, collection: &request.collection, id: &request.id };
    Ok(Some(user.kv.decode(&scope, &value)?))
}

/// Deletes a key; whether it existed.
pub(crate) async fn remove(session: &Session, collection: String, id: String) -> SdkResult<bool> {
    session.user()?;
    let answer: KvDeleteResponse = session.http.post("/v1/kv/delete", &KvKeyRequest { collection, id }).await?;
    Ok(answer.existed)
}

/// The ids of a collection, sorted.
pub(crate) async fn ids(session: &Session, collection: String) -> SdkResult<Vec<String>> {
    session.user()?;
    let (mut ids, mut pages) = (Vec::new(), PageWalk::default());
    while let Some(after) = pages.next_after() {
        let page = PageQuery { after: after.map(str::to_owned), limit: None };
        let request = KvListRequest { collection: collection.clone(), page };
        let answer: KvListResponse = session.http.post("/v1/kv/list", &request).await?;
        pages.answered(answer.ids.len(), answer.next)?;
        ids.extend(answer.ids);
    }
    Ok(ids)
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
            put(&session, collection, id, &text, encrypt).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Reads a value (decrypting it here), or `null` if there is none.
    #[wasm_bindgen(skip_typescript)]
    pub fn get(&self, collection: JsValue, id: JsValue) -> Promise {
        call(&self.session, key(&collection, &id), move |session, (collection, id)| async move {
            match fetch(&session, collection, id).await? {
                Some(text) => json::parse(&text),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Deletes a value; resolves to whether it existed.
    #[wasm_bindgen(skip_typescript)]
    pub fn delete(&self, collection: JsValue, id: JsValue) -> Promise {
        call(&self.session, key(&collection, &id), move |session, (collection, id)| async move {
            Ok(JsValue::from_bool(remove(&session, collection, id).await?))
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
                let ids = ids(&session, collection).await?;
                Ok(JsValue::from(ids.into_iter().map(JsValue::from).collect::<Array>()))
            },
        )
    }

    /// Listens for `"change"` or `"resync"`; returns a function that stops listening.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, event: JsValue, listener: JsValue) -> Result<Function, JsValue> {
        let kind = EventKind::parse_kv(&string_arg(&event, "event")?)?;
        self.session.user()?;
        Ok(self.session.listen(kind, listener, "kv.on")?)
    }
}
