//! Offline kv (SPEC.md D.5): what the SDK keeps so that `get` and `list` can answer
//! while the accelerator cannot be reached, the writes it queues meanwhile, and the
//! pure rules that put the two together. The records are sealed by
//! [`crate::device`]; this module says what is inside them and what they answer.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::proto::KvValue;

/// Prefix of the Web Lock held while a client sends an account's queue.
pub const QUEUE_LOCK_PREFIX: &str = "coffer/v1/kv-queue/";

/// The queue lock of the account whose owner tag (D.1) is `owner`.
pub fn queue_lock(owner: &str) -> String {
    format!("{QUEUE_LOCK_PREFIX}{owner}")
}

/// A kv write waiting for the accelerator: the plaintext of a `"kv-queued"` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedWrite {
    /// The key's collection.
    pub collection: String,
    /// The key's id.
    pub id: String,
    /// The value exactly as the accelerator will get it (§4.3: sealed, or plain
    /// with its MAC); `None` for a delete.
    pub value: Option<KvValue>,
}

impl QueuedWrite {
    fn is(&self, collection: &str, id: &str) -> bool {
        self.collection == collection && self.id == id
    }
}

/// What this device last knew of one key: the plaintext of a `"kv-cached"` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedKey {
    /// The key's collection.
    pub collection: String,
    /// The key's id.
    pub id: String,
    /// What was known of it.
    #[serde(flatten)]
    pub known: Known,
}

/// What a device can know of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "known", rename_all = "camelCase")]
pub enum Known {
    /// Its value, as the accelerator holds it (a `KvValue`).
    Value {
        /// The value.
        value: KvValue,
    },
    /// There is no such key.
    Absent,
    /// The key exists (a `list` named it); its value was never read here.
    Listed,
}

/// What this device can answer for one key without the accelerator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// This value.
    Value(KvValue),
    /// The key exists, but its value is not kept here.
    Exists,
    /// There is no such key.
    Absent,
    /// Nothing is known of it.
    Unknown,
}

impl Local {
    /// Whether the key exists, as far as this device knows.
    pub fn exists(&self) -> bool {
        matches!(self, Local::Value(_) | Local::Exists)
    }
}

/// The last write queued for `collection`/`id`, if any: `Some(None)` for a delete.
pub fn queued_value<'q>(queue: &'q [QueuedWrite], collection: &str, id: &str) -> Option<Option<&'q KvValue>> {
    queue.iter().rev().find(|w| w.is(collection, id)).map(|w| w.value.as_ref())
}

/// A key as this device knows it: the queue's last write to it, else what was
/// cached, else — if the whole collection was listed here — absent.
pub fn local(queue: &[QueuedWrite], cached: Option<&Known>, listed: bool, collection: &str, id: &str) -> Local {
    match (queued_value(queue, collection, id), cached) {
        (Some(Some(value)), _) => Local::Value(value.clone()),
        (Some(None), _) => Local::Absent,
        (None, Some(Known::Value { value })) => Local::Value(value.clone()),
        (None, Some(Known::Listed)) => Local::Exists,
        (None, Some(Known::Absent)) => Local::Absent,
        (None, None) if listed => Local::Absent,
        (None, None) => Local::Unknown,
    }
}

/// The ids of `collection`: `known` (from the accelerator, or the cache) with the
/// queue's writes to it applied in order; sorted.
pub fn ids(known: impl IntoIterator<Item = String>, queue: &[QueuedWrite], collection: &str) -> Vec<String> {
    let mut ids: BTreeSet<String> = known.into_iter().collect();
    for write in queue.iter().filter(|w| w.collection == collection) {
        if write.value.is_some() {
            ids.insert(write.id.clone());
        } else {
            ids.remove(&write.id);
        }
    }
    ids.into_iter().collect()
}

/// Keys whose queued write was sent late (after waiting in the queue), with the
/// sequence number it got: a later change to one of them, from another writer,
/// overwrote what this device wrote offline.
#[derive(Debug, Default)]
pub struct Sent {
    seqs: HashMap<(String, String), u64>,
}

impl Sent {
    /// A queued write to `collection`/`id` was stored at `seq`.
    pub fn stored(&mut self, collection: &str, id: &str, seq: u64) {
        self.seqs.insert((collection.to_owned(), id.to_owned()), seq);
    }

    /// The app wrote the key again: its offline write is no longer its latest word.
    pub fn forget(&mut self, collection: &str, id: &str) {
        self.seqs.remove(&(collection.to_owned(), id.to_owned()));
    }

    /// Whether the change at `seq` to `collection`/`id` overwrote a queued write
    /// (then forgotten: it is told once).
    pub fn overwritten(&mut self, collection: &str, id: &str, seq: u64) -> bool {
        let key = (collection.to_owned(), id.to_owned());
        match self.seqs.get(&key) {
            Some(&stored) if seq > stored => {
                self.seqs.remove(&key);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(json: &str) -> KvValue {
        KvValue::Plain { json: json.into(), mac: "m".into() }
    }

    fn set(collection: &str, id: &str, json: &str) -> QueuedWrite {
        QueuedWrite { collection: collection.into(), id: id.into(), value: Some(value(json)) }
    }

    fn delete(collection: &str, id: &str) -> QueuedWrite {
        QueuedWrite { collection: collection.into(), id: id.into(), value: None }
    }

    #[test]
    fn the_queue_wins_over_the_cache_and_its_last_write_wins() {
        let queue = [set("c", "a", "1"), set("c", "a", "2"), delete("c", "b")];
        let cached = Known::Value { value: value("0") };
        assert_eq!(local(&queue, Some(&cached), false, "c", "a"), Local::Value(value("2")));
        assert_eq!(local(&queue, Some(&cached), false, "c", "b"), Local::Absent);
        assert_eq!(local(&[], Some(&cached), false, "c", "a"), Local::Value(value("0")));
        assert_eq!(local(&[], Some(&Known::Listed), false, "c", "a"), Local::Exists);
        assert_eq!(local(&[], Some(&Known::Absent), false, "c", "a"), Local::Absent);
    }

    #[test]
    fn an_uncached_key_is_absent_only_in_a_listed_collection() {
        assert_eq!(local(&[], None, true, "c", "z"), Local::Absent);
        assert_eq!(local(&[], None, false, "c", "z"), Local::Unknown);
    }

    #[test]
    fn ids_apply_the_queue_in_order() {
        let queue = [set("c", "x", "1"), delete("c", "a"), set("d", "y", "1"), delete("c", "x"), set("c", "x", "2")];
        assert_eq!(ids(["a".into(), "b".into()], &queue, "c"), ["b", "x"]);
        assert_eq!(ids([], &queue, "d"), ["y"]);
    }

    #[test]
    fn a_later_change_overwrites_a_sent_write_once() {
        let mut sent = Sent::default();
        sent.stored("c", "a", 10);
        assert!(!sent.overwritten("c", "a", 10), "its own echo");
        assert!(!sent.overwritten("c", "b", 11), "another key");
        assert!(sent.overwritten("c", "a", 11));
        assert!(!sent.overwritten("c", "a", 12), "told once");
        sent.stored("c", "a", 20);
        sent.forget("c", "a");
        assert!(!sent.overwritten("c", "a", 21), "written again since");
    }

    #[test]
    fn cached_keys_read_as_d5_shows() {
        let sealed = KvValue::Sealed { envelope: "AQ".into() };
        let row = CachedKey { collection: "c".into(), id: "a".into(), known: Known::Value { value: sealed } };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(text, r#"{"collection":"c","id":"a","known":"value","value":{"kind":"sealed","envelope":"AQ"}}"#);
        assert_eq!(serde_json::from_str::<CachedKey>(&text).unwrap(), row);
        let listed = CachedKey { known: Known::Listed, ..row };
        assert_eq!(serde_json::to_string(&listed).unwrap(), r#"{"collection":"c","id":"a","known":"listed"}"#);
    }
}
