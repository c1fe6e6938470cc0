//! What the SDK accepts from the accelerator, before trusting any of it.
//!
//! A hostile or broken accelerator must not be able to make the SDK allocate without
//! bound or drop good data because of one bad record. So every answer the SDK reads
//! has a hard byte cap ([`Answer::MAX_BYTES`]) derived from the protocol's own limits,
//! the bytes are collected as they arrive by a [`CappedBody`] that refuses the first
//! byte past the cap, and the elements of list answers are read one by one
//! ([`Listed`]) so a malformed element is reported, not fatal.
//!
//! A declared size (`Content-Length`) is never used to size anything: only bytes that
//! actually arrived count.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::storage::{
    DeleteFileResponse, FileEntry, FileListResponse, InviteInfo, Member, MembersResponse, ShardsMissingResponse,
    SpaceInfo, SpaceKeysResponse, SpaceListResponse, UsageResponse,
};
use super::{
    ChallengeResponse, ErrorBody, KvDeleteResponse, KvGetResponse, KvLegacyResponse, KvListResponse, KvRenameResponse,
    KvWriteResponse, RecoveryChallengeResponse, SaltResponse, SessionInfo, SessionResponse,
};
use crate::validate::MAX_VALUE_BYTES;
use crate::{Coded, ErrorCode};

/// Cap of every answer of a fixed shape (a session, a salt, a space, a file entry, an
/// error). The largest valid one is a batch of 256 missing shard addresses (~17 KiB);
/// a file entry, with the longest sealed manifest, is under 2 KiB.
pub const MAX_SMALL_ANSWER_BYTES: usize = 64 * 1024;

/// Cap of a kv read. A plain value's JSON text travels as a JSON string, where
/// escaping (`"` → `\"`, a newline → `\n`) at most doubles it; a sealed value is
/// smaller (base64 adds a third). Plus room for the envelope's fields.
pub const MAX_KV_VALUE_ANSWER_BYTES: usize = 2 * MAX_VALUE_BYTES + MAX_SMALL_ANSWER_BYTES;

/// The most bytes one entry of a list page can take: a file entry with the longest
/// sealed manifest, a space with the longest sealed name (both under 2 KiB), a
/// member, or a kv id (a sealed name: 363 bytes of base64url). A legacy kv key
/// carries its value too; a page of them is held to the same cap by the
/// accelerator's [`MAX_LEGACY_PAGE_VALUE_BYTES`](super::MAX_LEGACY_PAGE_VALUE_BYTES)
/// (at most doubled by escaping, plus one largest value, plus 1000 pairs of names).
pub const MAX_LIST_ENTRY_BYTES: usize = 4 * 1024;

/// Cap of one page of a list answer (kv ids, spaces, members, files): a full page of
/// the largest entries ([`MAX_PAGE_ENTRIES`](super::MAX_PAGE_ENTRIES)), and room
/// for the rest of the answer.
pub const MAX_LIST_ANSWER_BYTES: usize = super::MAX_PAGE_ENTRIES as usize * MAX_LIST_ENTRY_BYTES + 64 * 1024;

/// A JSON answer the SDK reads, with the most bytes a valid one can take.
pub trait Answer: DeserializeOwned {
    /// Bytes past which the answer is refused ([`AnswerTooLarge`]).
    const MAX_BYTES: usize;
}

macro_rules! answers {
    ($cap:expr => $($ty:ty),+ $(,)?) => {
        $(impl Answer for $ty {
            const MAX_BYTES: usize = $cap;
        })+
    };
}

answers!(MAX_SMALL_ANSWER_BYTES =>
    ErrorBody, SaltResponse, SessionResponse, ChallengeResponse, SessionInfo, KvWriteResponse, KvDeleteResponse,
    ShardsMissingResponse, SpaceInfo, InviteInfo, UsageResponse, FileEntry, DeleteFileResponse,
    RecoveryChallengeResponse, KvRenameResponse,
);
answers!(MAX_KV_VALUE_ANSWER_BYTES => KvGetResponse);
answers!(MAX_LIST_ANSWER_BYTES =>
    KvListResponse, KvLegacyResponse, SpaceListResponse<Listed<SpaceInfo>>, MembersResponse<Listed<Member>>,
    FileListResponse<Listed<FileEntry>>, SpaceKeysResponse,
);

/// Walks a paged list (SPEC.md §7.4): the first page, then the page after each
/// `next`, until a page has none. A hostile accelerator cannot keep a reader asking
/// forever for the same page: a page that announces a next one must hold entries
/// and move the cursor, or the walk fails with [`PagesStalled`].
#[derive(Debug, Default)]
pub struct PageWalk {
    /// The cursor of the next page to ask for (`None`: the first page).
    after: Option<String>,
    /// Set once a page had no `next`.
    done: bool,
}

/// A list's pages did not advance (an empty page with a `next`, or the same cursor
/// again): the accelerator is not to be followed further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the accelerator's list pages do not advance (an empty page, or the same cursor again)")]
pub struct PagesStalled;

impl Coded for PagesStalled {
    /// The stable code: `Integrity` (no honest accelerator answers this way).
    fn code(&self) -> ErrorCode {
        ErrorCode::Integrity
    }
}

impl PageWalk {
    /// The `after` of the next page to ask for (`Some(None)` for the first), or
    /// `None` once the list is done.
    pub fn next_after(&self) -> Option<Option<&str>> {
        (!self.done).then_some(self.after.as_deref())
    }

    /// Takes note of a page that held `entries` and said `next`.
    pub fn answered(&mut self, entries: usize, next: Option<String>) -> Result<(), PagesStalled> {
        match next {
            None => self.done = true,
            Some(next) if entries == 0 || self.after.as_ref() == Some(&next) => return Err(PagesStalled),
            Some(next) => self.after = Some(next),
        }
        Ok(())
    }
}

/// An answer that went past its cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the accelerator's answer is over {cap} bytes, more than any valid answer to this request; it was not read further"
)]
pub struct AnswerTooLarge {
    /// The cap that was passed.
    pub cap: usize,
}

impl Coded for AnswerTooLarge {
    /// The stable code: `TooLarge`.
    fn code(&self) -> ErrorCode {
        ErrorCode::TooLarge
    }
}

/// An answer's bytes, collected as they arrive, never more than `cap`.
#[derive(Debug)]
pub struct CappedBody {
    bytes: Vec<u8>,
    cap: usize,
}

impl CappedBody {
    /// An empty body that will hold at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        CappedBody { bytes: Vec::new(), cap }
    }

    /// Bytes that may still arrive.
    pub fn room(&self) -> usize {
        self.cap - self.bytes.len()
    }

    /// Appends bytes that arrived; refuses (keeping none of them) if they pass the cap.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), AnswerTooLarge> {
        self.push_from(bytes.len(), |at, into| into.copy_from_slice(&bytes[at..at + into.len()]))
    }

    /// Appends `len` bytes straight from where they arrived: `fill(at, into)` copies
    /// arrived bytes `at..at + into.len()` into `into`. Refuses them, copying none, if
    /// they pass the cap.
    pub fn push_from(&mut self, len: usize, fill: impl FnOnce(usize, &mut [u8])) -> Result<(), AnswerTooLarge> {
        if len > self.room() {
            return Err(AnswerTooLarge { cap: self.cap });
        }
        let start = self.bytes.len();
        self.bytes.resize(start + len, 0);
        fill(0, &mut self.bytes[start..]);
        Ok(())
    }

    /// What arrived.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A list element with an id a person can be told about when it is skipped.
pub trait Entry {
    /// The element's id field on the wire (`spaceId`, `fileId`, `userId`).
    const ID_FIELD: &'static str;
}

impl Entry for SpaceInfo {
    const ID_FIELD: &'static str = "spaceId";
}

impl Entry for Member {
    const ID_FIELD: &'static str = "userId";
}

impl Entry for FileEntry {
    const ID_FIELD: &'static str = "fileId";
}

/// One element of a list answer, read on its own: a malformed element becomes
/// [`Listed::Malformed`] instead of failing the whole list, so one bad record never
/// hides the good ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed<T> {
    /// A well-formed element.
    Ok(T),
    /// An element that is not a `T`.
    Malformed {
        /// Its id field, if it has a string one.
        id: Option<String>,
        /// Why it could not be read.
        reason: String,
    },
}

impl<'de, T: Entry + DeserializeOwned> Deserialize<'de> for Listed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(match T::deserialize(&value) {
            Ok(entry) => Listed::Ok(entry),
            Err(e) => Listed::Malformed {
                id: value.get(T::ID_FIELD).and_then(serde_json::Value::as_str).map(str::to_owned),
                reason: e.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvKeys, KvScope};
    use crate::manifest::MAX_MANIFEST_LEN;
    use crate::proto::storage::Role;
    use crate::shard::ShardAddress;
    use crate::space::{self, SpaceKey};
    use crate::{account::RootSecret, b64};

    fn len_of<T: serde::Serialize>(answer: &T) -> usize {
        serde_json::to_vec(answer).unwrap().len()
    }

    #[test]
    fn the_largest_valid_answers_fit_their_caps() {
        let keys = KvKeys::derive(&RootSecret::from_bytes([1; 32]));
        let user = "u".repeat(64);
        let scope = KvScope { user_id: &user, collection: "c", id: "i" };
        // The worst case for escaping: a JSON string of escaped quotes, at the limit.
        let quotes = format!("\"{}\"", "\\\"".repeat((MAX_VALUE_BYTES - 2) / 2));
        crate::validate::value_json(&quotes).unwrap();
        for encrypt in [false, true] {
            let answer = KvGetResponse { value: Some(keys.encode(&scope, &quotes, encrypt, [0; 12])) };
            assert!(len_of(&answer) <= KvGetResponse::MAX_BYTES, "encrypt {encrypt}: {}", len_of(&answer));
        }

        let key = SpaceKey::from_bytes([2; 32]);
        let id = b64::encode([3u8; 16]);
        let record = space::seal_file_record(&key, &id, &id, &"m".repeat(MAX_MANIFEST_LEN), [0; 12]).unwrap();
        let entry = FileEntry {
            space_id: id.clone(),
            file_id: id.clone(),
            sealed_record: b64::encode(record),
            stored_bytes: u64::MAX,
            created_by: "u".repeat(64),
            created_at_ms: u64::MAX,
            epoch: u32::MAX,
        };
        assert!(len_of(&entry) <= MAX_LIST_ENTRY_BYTES);
        let full = crate::proto::storage::FileListResponse {
            files: vec![entry.clone(); crate::proto::MAX_PAGE_ENTRIES as usize],
            next: Some(format!("{}.{}", u64::MAX, i64::MAX)),
        };
        assert!(len_of(&full) <= MAX_LIST_ANSWER_BYTES, "a full page of the largest files: {}", len_of(&full));
        let ids = crate::proto::KvListResponse {
            ids: vec!["\"".repeat(256); crate::proto::MAX_PAGE_ENTRIES as usize],
            next: Some("\"".repeat(256)),
        };
        assert!(len_of(&ids) <= MAX_LIST_ANSWER_BYTES, "a full page of the longest ids: {}", len_of(&ids));
        let name = space::seal_space_name(&key, &id, &"n".repeat(space::MAX_SPACE_NAME_BYTES), [0; 12]).unwrap();
        let info = SpaceInfo {
            space_id: id.clone(),
            sealed_name: b64::encode(name),
            role: Role::Owner,
            created_at_ms: u64::MAX,
            epoch: u32::MAX,
            rotation_due: false,
            in_roster: false,
        };
        assert!(len_of(&info) <= MAX_LIST_ENTRY_BYTES);
        let member = crate::proto::storage::Member {
            user_id: "u".repeat(64),
            username: "\"".repeat(crate::validate::MAX_USERNAME_BYTES),
            role: Role::Owner,
            joined_at_ms: u64::MAX,
            public_key: Some(b64::encode([0u8; 32])),
            roster_mac: Some(b64::encode([0u8; 32])),
        };
        assert!(len_of(&member) <= MAX_LIST_ENTRY_BYTES, "the largest member: {}", len_of(&member));
        let link = crate::proto::storage::EpochLink {
            epoch: u32::MAX,
            sealed_previous: b64::encode([0u8; crate::epoch::EPOCH_LINK_LEN]),
        };
        let keys = SpaceKeysResponse {
            epoch: u32::MAX,
            rotation_due: true,
            in_roster: true,
            sealed_name: b64::encode([0u8; 1024]),
            sealed_key: Some(b64::encode([0u8; crate::epoch::SEALED_EPOCH_KEY_LEN])),
            links: vec![link; crate::proto::storage::MAX_LINKS_PER_ANSWER],
        };
        assert!(len_of(&keys) <= SpaceKeysResponse::MAX_BYTES, "the most links: {}", len_of(&keys));
        let missing = ShardsMissingResponse {
            missing: vec![ShardAddress::of(b"x"); crate::proto::storage::MAX_BATCH_ADDRESSES],
            grace_ms: u64::MAX,
        };
        assert!(len_of(&missing) <= ShardsMissingResponse::MAX_BYTES);
    }

    #[test]
    fn a_page_walk_follows_next_and_refuses_a_stall() {
        let mut walk = PageWalk::default();
        assert_eq!(walk.next_after(), Some(None));
        walk.answered(2, Some("b".into())).unwrap();
        assert_eq!(walk.next_after(), Some(Some("b")));
        assert_eq!(walk.answered(1, Some("b".into())), Err(PagesStalled), "the same cursor again");
        assert_eq!(walk.answered(0, Some("c".into())), Err(PagesStalled), "an empty page that promises more");
        walk.answered(1, Some("c".into())).unwrap();
        walk.answered(0, None).unwrap();
        assert_eq!(walk.next_after(), None, "done");
    }

    #[test]
    fn a_capped_body_refuses_the_first_byte_past_its_cap() {
        let mut body = CappedBody::new(5);
        body.push(b"abc").unwrap();
        assert_eq!(body.room(), 2);
        assert_eq!(body.push(b"def"), Err(AnswerTooLarge { cap: 5 }));
        assert_eq!(body.room(), 2, "nothing of a refused push is kept");
        body.push(b"de").unwrap();
        assert_eq!(body.push(b""), Ok(()));
        assert_eq!(body.push(b"f").unwrap_err().code(), ErrorCode::TooLarge);
        assert_eq!(body.into_bytes(), b"abcde");
    }

    #[test]
    fn one_malformed_element_does_not_fail_the_list() {
        let text = r#"{"spaces": [
            {"spaceId": "a", "sealedName": "x", "role": "owner", "createdAtMs": 1},
            {"spaceId": "b", "sealedName": 7},
            "not even an object",
            {"spaceId": "c", "sealedName": "y", "role": "reader", "createdAtMs": 2}
        ]}"#;
        let list: SpaceListResponse<Listed<SpaceInfo>> = serde_json::from_str(text).unwrap();
        let ids: Vec<_> = list
            .spaces
            .iter()
            .map(|s| match s {
                Listed::Ok(info) => format!("ok {}", info.space_id),
                Listed::Malformed { id, .. } => format!("bad {id:?}"),
            })
            .collect();
        assert_eq!(ids, ["ok a", "bad Some(\"b\")", "bad None", "ok c"]);
        let Listed::Malformed { reason, .. } = &list.spaces[1] else { unreachable!() };
        assert!(reason.contains("invalid type"), "{reason}");
    }
}
