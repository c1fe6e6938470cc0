//! What the SDK keeps on this device: rows of the `coffer` IndexedDB database
//! (`browser.js`), each one's content a record sealed by the core
//! ([`coffer_core::device`], SPEC.md "On the device"). This module moves rows; it
//! never sees a secret in the clear except as the core opens it.

use js_sys::{Array, Promise};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use coffer_core::ErrorCode;

use crate::error::{SdkError, SdkResult, describe_js};
use crate::js::to_js;

#[wasm_bindgen(module = "/src/browser.js")]
extern "C" {
    #[wasm_bindgen(js_name = idbPut)]
    fn idb_put(store: &str, value: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = idbGet)]
    fn idb_get(store: &str, key: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = idbByIndex)]
    fn idb_by_index(store: &str, index: &str, key: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = idbRange)]
    fn idb_range(store: &str, lower: &JsValue, upper: &JsValue) -> Promise;
    #[wasm_bindgen(js_name = idbDelete)]
    fn idb_delete(ranges: &Array) -> Promise;
    #[wasm_bindgen(js_name = idbPutAll)]
    fn idb_put_all(store: &str, values: &Array) -> Promise;
    #[wasm_bindgen(js_name = idbDeleteByIndex)]
    fn idb_delete_by_index(stores: &Array, index: &str, key: &JsValue) -> Promise;
}

/// The object store of upload plans.
pub const UPLOADS: &str = "uploads";
/// The object store of the chunks each upload has stored.
pub const UPLOAD_CHUNKS: &str = "upload_chunks";

/// A row of [`UPLOADS`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanRow {
    /// The upload's id.
    pub id: String,
    /// The account's owner tag (SPEC D.1).
    pub owner: String,
    /// When the plan expires, ms since the Unix epoch (also inside the seal).
    pub expires_at: f64,
    /// The sealed `UploadPlan`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A row of [`UPLOAD_CHUNKS`].
#[derive(Serialize, Deserialize)]
pub struct ChunkRow {
    /// The upload's id.
    pub id: String,
    /// The data chunk's index.
    pub index: f64,
    /// The sealed `ChunkDone`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// Why the device's storage failed: it is missing (some private windows), full, or
/// held by another tab.
fn failed(what: &str, e: &JsValue) -> SdkError {
    SdkError::new(ErrorCode::Internal, format!("{what} on this device failed (IndexedDB): {}", describe_js(e)))
}

async fn run(what: &str, promise: Promise) -> SdkResult<JsValue> {
    JsFuture::from(promise).await.map_err(|e| failed(what, &e))
}

fn rows<T: DeserializeOwned>(what: &str, value: JsValue) -> SdkResult<Vec<T>> {
    serde_wasm_bindgen::from_value(value).map_err(|e| failed(what, &e.into()))
}

/// Writes a row.
pub async fn put<T: Serialize>(store: &str, row: &T) -> SdkResult<()> {
    run("keeping a record", idb_put(store, &to_js(row))).await.map(drop)
}

/// The row under `key`, if any.
pub async fn get<T: DeserializeOwned>(store: &str, key: &str) -> SdkResult<Option<T>> {
    let value = run("reading a record", idb_get(store, &key.into())).await?;
    if value.is_undefined() {
        return Ok(None);
    }
    serde_wasm_bindgen::from_value(value).map(Some).map_err(|e| failed("reading a record", &e.into()))
}

/// Writes every row of `rows`, in one transaction.
pub async fn put_all<T: Serialize>(store: &str, rows: &[T]) -> SdkResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let values: Array = rows.iter().map(to_js).collect();
    run("keeping records", idb_put_all(store, &values)).await.map(drop)
}

/// Deletes the row under each of `keys` (strings or numbers), in one transaction.
pub async fn delete_keys(store: &str, keys: &[JsValue]) -> SdkResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let ranges: Array = keys.iter().map(|key| Array::of2(&store.into(), key)).collect();
    run("deleting records", idb_delete(&ranges)).await.map(drop)
}

/// Deletes every row of each of `stores` whose `index` is `key`, in one transaction.
pub async fn delete_by_index(stores: &[&str], index: &str, key: &str) -> SdkResult<()> {
    let stores: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
    run("deleting records", idb_delete_by_index(&stores, index, &key.into())).await.map(drop)
}

/// The rows whose `index` is `key`.
pub async fn by_index<T: DeserializeOwned>(store: &str, index: &str, key: &str) -> SdkResult<Vec<T>> {
    rows("listing records", run("listing records", idb_by_index(store, index, &key.into())).await?)
}

/// The key `[id, index]` of a row of [`UPLOAD_CHUNKS`].
pub fn chunk_key(id: &str, index: f64) -> JsValue {
    Array::of2(&id.into(), &index.into()).into()
}

/// Every chunk row of upload `id`, by index.
pub async fn chunks_of(id: &str) -> SdkResult<Vec<ChunkRow>> {
    let promise = idb_range(UPLOAD_CHUNKS, &chunk_key(id, 0.0), &chunk_key(id, f64::MAX));
    rows("reading an upload's chunks", run("reading an upload's chunks", promise).await?)
}

/// Deletes upload `id`'s plan and chunk rows, in one transaction.
pub async fn delete_upload(id: &str) -> SdkResult<()> {
    let ranges = Array::of2(
        &Array::of2(&UPLOADS.into(), &id.into()),
        &Array::of3(&UPLOAD_CHUNKS.into(), &chunk_key(id, 0.0), &chunk_key(id, f64::MAX)),
    );
    run("deleting an upload's records", idb_delete(&ranges)).await.map(drop)
}
