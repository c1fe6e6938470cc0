//! Offline kv's rows of the `coffer` database (SPEC.md D.5): the cache of what this
//! device last knew of each key, the collections it knows every id of, and the queue
//! of writes waiting for the accelerator. Every row is found by a tag (the owner
//! tag, or a keyed hash of a name) and its content is a sealed device record, so no
//! name or value is readable on the device. A row that does not open (altered,
//! another SDK version's) is passed over, never trusted.

use std::rc::Rc;

use coffer_core::device::RecordKind;
use coffer_core::offline::{CachedKey, Known, QueuedWrite};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::device;
use crate::error::SdkResult;
use crate::random;
use crate::session::User;

const CACHE: &str = "kv_cache";
const LISTED: &str = "kv_listed";
const QUEUE: &str = "kv_queue";

/// A row of the cache: one key, found by its key tag and its collection's tag.
#[derive(Serialize, Deserialize)]
struct CacheRow {
    tag: String,
    owner: String,
    collection: String,
    #[serde(with = "serde_bytes")]
    sealed: Vec<u8>,
}

/// A row saying every id of a collection is in the cache.
#[derive(Serialize, Deserialize)]
struct ListedRow {
    tag: String,
    owner: String,
    #[serde(with = "serde_bytes")]
    sealed: Vec<u8>,
}

/// A queued write; `n` orders the queue (IndexedDB generates it).
#[derive(Serialize, Deserialize)]
struct QueueRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<f64>,
    owner: String,
    entry: String,
    #[serde(with = "serde_bytes")]
    sealed: Vec<u8>,
}

/// A write in the queue.
pub struct Queued {
    /// Its place in the queue.
    pub n: f64,
    /// Its record id, random.
    pub entry: String,
    /// The write.
    pub write: QueuedWrite,
}

/// One account's offline rows.
pub struct Kept {
    user: Rc<User>,
}

impl Kept {
    /// The rows of `user`'s account.
    pub fn new(user: Rc<User>) -> Self {
        Kept { user }
    }

    fn owner(&self) -> String {
        self.user.device.owner()
    }

    fn seal<T: Serialize>(&self, kind: RecordKind, id: &str, value: &T) -> Vec<u8> {
        let json = serde_json::to_vec(value).expect("records serialize");
        self.user.device.seal(kind, id, &json, random::bytes())
    }

    fn open<T: DeserializeOwned>(&self, kind: RecordKind, id: &str, sealed: &[u8]) -> Option<T> {
        let json = self.user.device.open(kind, id, sealed).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The queue, oldest first.
    pub async fn queue(&self) -> SdkResult<Vec<Queued>> {
        let rows: Vec<QueueRow> = device::by_index(QUEUE, "owner", &self.owner()).await?;
        let mut queue: Vec<Queued> = rows
            .into_iter()
            .filter_map(|row| {
                let write = self.open(RecordKind::KvQueued, &row.entry, &row.sealed)?;
                Some(Queued { n: row.n?, entry: row.entry, write })
            })
            .collect();
        queue.sort_by(|a, b| a.n.total_cmp(&b.n));
        Ok(queue)
    }

    /// How many writes are queued: those this SDK can open and so will send.
    pub async fn pending(&self) -> SdkResult<u32> {
        Ok(self.queue().await?.len() as u32)
    }

    /// Queues `write`; its entry id.
    pub async fn enqueue(&self, write: &QueuedWrite) -> SdkResult<String> {
        let entry = coffer_core::b64::encode(random::bytes::<16>());
        let sealed = self.seal(RecordKind::KvQueued, &entry, write);
        device::put(QUEUE, &QueueRow { n: None, owner: self.owner(), entry: entry.clone(), sealed }).await?;
        Ok(entry)
    }

    /// Takes the write at `n` off the queue.
    pub async fn dequeue(&self, n: f64) -> SdkResult<()> {
        device::delete_keys(QUEUE, &[JsValue::from_f64(n)]).await
    }

    /// What the cache holds for a key.
    pub async fn cached(&self, collection: &str, id: &str) -> SdkResult<Option<Known>> {
        let tag = self.user.device.key_tag(collection, id);
        let Some(row) = device::get::<CacheRow>(CACHE, &tag).await? else { return Ok(None) };
        let key: Option<CachedKey> = self.open(RecordKind::KvCached, &tag, &row.sealed);
        Ok(key.filter(|key| key.collection == collection && key.id == id).map(|key| key.known))
    }

    /// Keeps what is now known of keys.
    pub async fn remember(&self, keys: Vec<CachedKey>) -> SdkResult<()> {
        let owner = self.owner();
        let rows: Vec<CacheRow> = keys
            .into_iter()
            .map(|key| {
                let tag = self.user.device.key_tag(&key.collection, &key.id);
                let sealed = self.seal(RecordKind::KvCached, &tag, &key);
                let collection = self.user.device.collection_tag(&key.collection);
                CacheRow { tag, owner: owner.clone(), collection, sealed }
            })
            .collect();
        device::put_all(CACHE, &rows).await
    }

    /// Whether every id of `collection` is in the cache.
    pub async fn listed(&self, collection: &str) -> SdkResult<bool> {
        let tag = self.user.device.collection_tag(collection);
        let Some(row) = device::get::<ListedRow>(LISTED, &tag).await? else { return Ok(false) };
        let name: Option<String> = self.open(RecordKind::KvListed, &tag, &row.sealed);
        Ok(name.as_deref() == Some(collection))
    }

    /// The cached keys of `collection`.
    async fn cached_keys(&self, collection: &str) -> SdkResult<Vec<CachedKey>> {
        let tag = self.user.device.collection_tag(collection);
        let rows: Vec<CacheRow> = device::by_index(CACHE, "collection", &tag).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| self.open::<CachedKey>(RecordKind::KvCached, &row.tag, &row.sealed))
            .filter(|key| key.collection == collection)
            .collect())
    }

    /// The ids the cache holds as existing in `collection`.
    pub async fn cached_ids(&self, collection: &str) -> SdkResult<Vec<String>> {
        let keys = self.cached_keys(collection).await?;
        Ok(keys.into_iter().filter(|key| key.known != Known::Absent).map(|key| key.id).collect())
    }

    /// The accelerator listed `ids` as all of `collection`: keys kept as existing
    /// before it was asked (`before`) that it did not name are absent (a key kept
    /// since, by a write or the feed, is newer than the list), those not cached yet
    /// exist, and the collection is known whole.
    pub async fn listed_as(&self, collection: &str, ids: &[String], before: &[String]) -> SdkResult<()> {
        let named: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        let before: std::collections::HashSet<&str> = before.iter().map(String::as_str).collect();
        let cached = self.cached_keys(collection).await?;
        let have: std::collections::HashSet<String> =
            cached.iter().filter(|key| key.known != Known::Absent).map(|key| key.id.clone()).collect();
        let mut changed: Vec<CachedKey> = cached
            .into_iter()
            .filter(|key| {
                key.known != Known::Absent && !named.contains(key.id.as_str()) && before.contains(key.id.as_str())
            })
            .map(|key| CachedKey { known: Known::Absent, ..key })
            .collect();
        changed.extend(ids.iter().filter(|id| !have.contains(id.as_str())).map(|id| CachedKey {
            collection: collection.to_owned(),
            id: id.clone(),
            known: Known::Listed,
        }));
        self.remember(changed).await?;
        let tag = self.user.device.collection_tag(collection);
        let sealed = self.seal(RecordKind::KvListed, &tag, &collection);
        device::put(LISTED, &ListedRow { tag, owner: self.owner(), sealed }).await
    }

    /// Forgets the cache (signing out); the queue stays, for the next sign-in.
    pub async fn forget_cache(&self) -> SdkResult<()> {
        device::delete_by_index(&[CACHE, LISTED], "owner", &self.owner()).await
    }
}
