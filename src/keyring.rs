//! The space keys this account holds (SPEC.md F.12). The newest key of each space is
//! kept in the account's sealed `$spaces` kv collection (id = space id, value =
//! `{"key": base64url, "epoch": n}`); older epochs' keys are reached through the
//! space's links when a record needs one. All of it is cached for the session.
//!
//! A newer epoch's key comes from the accelerator sealed to this account, and is
//! taken only if its links lead down to the newest key already held
//! ([`EpochKeys::accept`]), so the accelerator cannot hand this account a key of
//! its own making.

use std::collections::HashMap;

use coffer_core::epoch::{self, EpochKeys};
use coffer_core::proto::storage::{EpochLink, SpaceKeysResponse};
use coffer_core::space::{SpaceError, SpaceKey};
use coffer_core::{ErrorCode, b64};
use serde::{Deserialize, Serialize};

use crate::error::{SdkError, SdkResult};
use crate::kv;
use crate::session::Session;
use crate::spaces::space_path;

/// The reserved collection of space keys.
pub const SPACES: &str = "$spaces";

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The newest key held, base64url.
    key: String,
    /// Its epoch (absent in entries from before epochs: 0).
    #[serde(default)]
    epoch: u32,
}

/// Session cache of space keys.
#[derive(Default)]
pub struct Keyring {
    /// Keys already read or written this session.
    cache: std::cell::RefCell<HashMap<String, EpochKeys>>,
    /// Spaces whose keys were checked with the accelerator this session.
    checked: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl Keyring {
    fn cached(&self, space_id: &str) -> Option<EpochKeys> {
        self.cache.borrow().get(space_id).cloned()
    }

    /// Forgets every cached key (sign-out).
    pub fn clear(&self) {
        self.cache.borrow_mut().clear();
        self.checked.borrow_mut().clear();
    }

    fn remember(&self, space_id: &str, keys: &EpochKeys) {
        self.cache.borrow_mut().insert(space_id.to_owned(), keys.clone());
    }
}

fn malformed() -> SdkError {
    SdkError::new(ErrorCode::Integrity, "a stored space key is malformed")
}

/// The keys of a space this account holds, if any.
pub async fn find(session: &Session, space_id: &str) -> SdkResult<Option<EpochKeys>> {
    if let Some(keys) = session.keyring.cached(space_id) {
        return Ok(Some(keys));
    }
    let Some(text) = kv::fetch(session, SPACES.into(), space_id.into()).await? else {
        return Ok(None);
    };
    let entry: Entry = serde_json::from_str(&text).map_err(|_| malformed())?;
    let bytes = b64::decode_array::<32>(&entry.key).ok_or_else(malformed)?;
    let keys = EpochKeys::new(space_id, entry.epoch, SpaceKey::from_bytes(bytes));
    session.keyring.remember(space_id, &keys);
    Ok(Some(keys))
}

/// The keys of a space, or `Forbidden` if this account holds none.
pub async fn require(session: &Session, space_id: &str) -> SdkResult<EpochKeys> {
    find(session, space_id).await?.ok_or_else(|| {
        SdkError::new(
            ErrorCode::Forbidden,
            format!("this account is not a member of space {space_id:?} (no key for it): join it with an invite first"),
        )
    })
}

/// The newest epoch this account holds for a space, and its key.
pub async fn newest(session: &Session, space_id: &str) -> SdkResult<(u32, SpaceKey)> {
    let keys = require(session, space_id).await?;
    let (epoch, key) = keys.newest();
    Ok((epoch, key.clone()))
}

/// Epoch `epoch`'s key: held, or taken from the accelerator (a newer epoch) or
/// reached through the links (an older one).
pub async fn for_epoch(session: &Session, space_id: &str, epoch: u32) -> SdkResult<SpaceKey> {
    if epoch > require(session, space_id).await?.newest().0 {
        catch_up(session, space_id).await?;
    }
    let mut keys = require(session, space_id).await?;
    if epoch < keys.oldest() {
        let links = links_after(session, space_id, epoch, keys.oldest()).await?;
        keys.descend(epoch, |e| link_of(&links, e))?;
        session.keyring.remember(space_id, &keys);
    }
    keys.get(epoch).cloned().ok_or_else(|| {
        SdkError::new(
            ErrorCode::Integrity,
            format!("the accelerator names key epoch {epoch} of space {space_id:?}, which the space does not have"),
        )
    })
}

/// Where the space's keys stand at the accelerator, after taking any newer key.
pub struct KeyState {
    /// The current epoch (now held).
    pub epoch: u32,
    /// Whether a rotation is due.
    pub rotation_due: bool,
    /// The space's name sealed under the current epoch's key, base64url.
    pub sealed_name: String,
}

/// Brings the space's keys up to date once per session, before the first file
/// call on it (`catch_up`): a newer key is taken, and a member from before rosters
/// enters the roster.
pub async fn check_once(session: &Session, space_id: &str) -> SdkResult<()> {
    require(session, space_id).await?;
    if session.keyring.checked.borrow().contains(space_id) {
        return Ok(());
    }
    catch_up(session, space_id).await?;
    session.keyring.checked.borrow_mut().insert(space_id.to_owned());
    Ok(())
}

/// Asks the accelerator for the space's current epoch and takes its key if it is
/// newer than the one held: the key sealed to this account, proven by the links
/// down to the newest key held, then kept in `$spaces`. A member with no roster
/// entry (from before rosters) that holds the current key enters the roster.
pub async fn catch_up(session: &Session, space_id: &str) -> SdkResult<KeyState> {
    let user = session.user()?;
    let mut keys = require(session, space_id).await?;
    let held = keys.newest().0;
    let answer: SpaceKeysResponse = session.http.get(&keys_path(space_id, held)?).await?;
    if answer.epoch > epoch::MAX_EPOCH {
        return Err(SdkError::new(
            ErrorCode::Integrity,
            format!(
                "the accelerator names key epoch {} of space {space_id:?}, past the last there can be",
                answer.epoch
            ),
        ));
    }
    let state = KeyState { epoch: answer.epoch, rotation_due: answer.rotation_due, sealed_name: answer.sealed_name };
    if answer.epoch <= held {
        if !answer.in_roster && answer.epoch == held {
            crate::rotation::enter_roster(session, space_id, held, keys.newest().1).await?;
        }
        return Ok(state);
    }
    let sealed = answer.sealed_key.as_deref().ok_or_else(|| {
        SdkError::new(
            ErrorCode::Forbidden,
            format!(
                "space {space_id:?} has a new key (epoch {}) that was not sealed to this account (it had no roster entry when the key changed): ask an owner to invite you again",
                answer.epoch
            ),
        )
    })?;
    let sealed = b64::decode(sealed).ok_or(epoch::EpochError::KeyDecrypt { epoch: answer.epoch })?;
    let key = epoch::open_epoch_key(&user.identity, space_id, answer.epoch, &user.user_id, &sealed)?;
    let mut links = decoded(answer.links);
    let last = links.last().map_or(held, |(e, _)| *e);
    if last < answer.epoch {
        links.extend(links_after(session, space_id, last, answer.epoch).await?);
    }
    keys.accept(answer.epoch, key, |e| link_of(&links, e))?;
    store(session, space_id, &keys).await?;
    Ok(state)
}

fn keys_path(space_id: &str, after: u32) -> SdkResult<String> {
    Ok(format!("{}/keys?after={after}", space_path(space_id)?))
}

/// Links as `(epoch, bytes)`; one that is not base64url becomes empty bytes, which
/// no link check accepts.
fn decoded(links: Vec<EpochLink>) -> Vec<(u32, Vec<u8>)> {
    links.into_iter().map(|l| (l.epoch, b64::decode(&l.sealed_previous).unwrap_or_default())).collect()
}

fn link_of(links: &[(u32, Vec<u8>)], epoch: u32) -> Option<&[u8]> {
    links.iter().find(|(e, _)| *e == epoch).map(|(_, bytes)| bytes.as_slice())
}

/// The links of epochs `after + 1 ..= upto`, asking page by page.
async fn links_after(session: &Session, space_id: &str, after: u32, upto: u32) -> SdkResult<Vec<(u32, Vec<u8>)>> {
    let mut links = Vec::new();
    let mut from = after;
    while from < upto {
        let answer: SpaceKeysResponse = session.http.get(&keys_path(space_id, from)?).await?;
        let page: Vec<_> = decoded(answer.links).into_iter().filter(|(e, _)| *e > from && *e <= upto).collect();
        let Some(&(last, _)) = page.last() else { break };
        links.extend(page);
        from = last;
    }
    Ok(links)
}

/// The keys to keep after joining with an invite's `key` for epoch `epoch` (proven
/// to open the space's name): a key already held stays; a newer key is taken only
/// if its links lead down to the newest key held (a member re-invited after being
/// left out or removed); anything else is `KeyConflict`, and the held keys stay.
pub async fn adopt(session: &Session, space_id: &str, epoch: u32, key: SpaceKey) -> SdkResult<EpochKeys> {
    let Some(mut keys) = find(session, space_id).await? else {
        return Ok(EpochKeys::new(space_id, epoch, key));
    };
    if keys.get(epoch) == Some(&key) {
        return Ok(keys);
    }
    let held = keys.newest().0;
    if epoch <= held {
        return Err(SpaceError::KeyConflict.into());
    }
    let links = links_after(session, space_id, held, epoch).await?;
    keys.accept(epoch, key, |e| link_of(&links, e)).map_err(|_| SdkError::from(SpaceError::KeyConflict))?;
    Ok(keys)
}

/// Records a space's keys for this account: the newest, sealed, in `$spaces`; all
/// of them in the session's cache.
pub async fn store(session: &Session, space_id: &str, keys: &EpochKeys) -> SdkResult<()> {
    let (epoch, key) = keys.newest();
    let entry = Entry { key: b64::encode(key.as_bytes()), epoch };
    let text = serde_json::to_string(&entry).expect("entries serialize");
    kv::put(session, SPACES.into(), space_id.into(), &text, true).await?;
    session.keyring.remember(space_id, keys);
    Ok(())
}

/// Forgets a space's keys (after leaving the space).
pub async fn forget(session: &Session, space_id: &str) -> SdkResult<()> {
    session.keyring.cache.borrow_mut().remove(space_id);
    kv::remove(session, SPACES.into(), space_id.into()).await.map(drop)
}
