//! The space keys this account holds, kept in its sealed `$spaces` kv collection
//! (id = space id, value = `{"key": base64url}`) and cached for the session.

use std::collections::HashMap;

use coffer_core::space::SpaceKey;
use coffer_core::{ErrorCode, b64};
use serde::{Deserialize, Serialize};

use crate::error::{SdkError, SdkResult};
use crate::kv;
use crate::session::Session;

/// The reserved collection of space keys.
pub const SPACES: &str = "$spaces";

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The space key, base64url.
    key: String,
}

/// Session cache of space keys.
#[derive(Default)]
pub struct Keyring {
    /// Keys already read or written this session.
    cache: std::cell::RefCell<HashMap<String, SpaceKey>>,
}

impl Keyring {
    fn cached(&self, space_id: &str) -> Option<SpaceKey> {
        self.cache.borrow().get(space_id).cloned()
    }

    /// Forgets every cached key (sign-out).
    pub fn clear(&self) {
        self.cache.borrow_mut().clear();
    }

    fn remember(&self, space_id: &str, key: &SpaceKey) {
        self.cache.borrow_mut().insert(space_id.to_owned(), key.clone());
    }
}

/// The key of a space, if this account holds it.
pub async fn find(session: &Session, space_id: &str) -> SdkResult<Option<SpaceKey>> {
    if let Some(key) = session.keyring.cached(space_id) {
        return Ok(Some(key));
    }
    let Some(text) = kv::fetch(session, SPACES.into(), space_id.into()).await? else {
        return Ok(None);
    };
    let entry: Entry = serde_json::from_str(&text)
        .map_err(|_| SdkError::new(ErrorCode::Integrity, "a stored space key is malformed"))?;
    let bytes = b64::decode_array::<32>(&entry.key)
        .ok_or_else(|| SdkError::new(ErrorCode::Integrity, "a stored space key is malformed"))?;
    let key = SpaceKey::from_bytes(bytes);
    session.keyring.remember(space_id, &key);
    Ok(Some(key))
}

/// The key of a space, or `Forbidden` if this account holds none.
pub async fn require(session: &Session, space_id: &str) -> SdkResult<SpaceKey> {
    find(session, space_id).await?.ok_or_else(|| {
        SdkError::new(
            ErrorCode::Forbidden,
            format!("this account is not a member of space {space_id:?} (no key for it): join it with an invite first"),
        )
    })
}

/// Records a space key (sealed) for this account.
pub async fn store(session: &Session, space_id: &str, key: &SpaceKey) -> SdkResult<()> {
    let entry = Entry { key: b64::encode(key.as_bytes()) };
    let text = serde_json::to_string(&entry).expect("entries serialize");
    kv::put(session, SPACES.into(), space_id.into(), &text, true).await?;
    session.keyring.remember(space_id, key);
    Ok(())
}

/// Forgets a space key (after leaving the space).
pub async fn forget(session: &Session, space_id: &str) -> SdkResult<()> {
    session.keyring.cache.borrow_mut().remove(space_id);
    kv::remove(session, SPACES.into(), space_id.into()).await.map(drop)
}
