//! Rotating a space's key (SPEC.md F.12), and the roster entries it seals to.
//!
//! When a member goes, the accelerator marks a rotation due and takes no new file
//! or invite until some member makes the next epoch: a new key sealed to every
//! roster entry that checks under the current key ([`coffer_core::epoch::rotate`]),
//! with the old key linked under it. The remover's SDK does it at once; any other
//! member's SDK does it on its next call that finds one due ([`settle`]).

use coffer_core::epoch::{self, roster_mac};
use coffer_core::proto::answer::{Listed, PageWalk};
use coffer_core::proto::storage::{Member, MembersResponse, Role, RosterEntryRequest, SpaceInfo};
use coffer_core::space::{self, SpaceError, SpaceKey};
use coffer_core::{ErrorCode, b64};

use crate::error::{SdkError, SdkResult};
use crate::keyring;
use crate::listing::page_path;
use crate::random;
use crate::session::Session;
use crate::spaces::space_path;

/// Rotations tried before giving up, when other members keep changing the space.
const ATTEMPTS: usize = 3;

/// Makes the space's next key epoch, if one is due; `departed`, the member just
/// removed, must not be among those the new key is sealed to. Retries when the
/// accelerator answers `Conflict` (another member rotated first, or the members
/// changed meanwhile), and stops once none is due any more.
pub async fn rotate(session: &Session, space_id: &str, departed: Option<&str>) -> SdkResult<()> {
    let user = session.user()?;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let state = keyring::catch_up(session, space_id).await?;
        if !state.rotation_due {
            return Ok(());
        }
        let (epoch, key) = keyring::newest(session, space_id).await?;
        if epoch != state.epoch {
            return Err(SdkError::new(
                ErrorCode::Integrity,
                format!(
                    "the accelerator says space {space_id:?} is at key epoch {}, older than epoch {epoch}, which this account holds",
                    state.epoch
                ),
            ));
        }
        let members = members(session, space_id).await?;
        if !members.iter().any(|m| m.user_id == user.user_id && m.roster_mac.is_some()) {
            enter_roster(session, space_id, epoch, &key).await?;
            continue;
        }
        let sealed_name = b64::decode(&state.sealed_name).ok_or(SpaceError::NameDecrypt)?;
        let name = space::open_space_name(&key, space_id, &sealed_name)?;
        let fresh = SpaceKey::from_bytes(random::bytes());
        let made =
            epoch::rotate(space_id, (epoch, &key), &members, departed, &name, fresh, &mut |buf| random::fill(buf))?;
        let path = format!("{}/rotate", space_path(space_id)?);
        match session.http.post::<_, SpaceInfo>(&path, &made.request).await {
            Ok(info) => {
                info.check_is(space_id)?;
                let link = b64::decode(&made.request.sealed_previous).unwrap_or_default();
                let mut keys = keyring::require(session, space_id).await?;
                keys.accept(made.request.epoch, made.key, |_| Some(link.as_slice()))?;
                return keyring::store(session, space_id, &keys).await;
            }
            Err(e) if e.code == ErrorCode::Conflict => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| SdkError::new(ErrorCode::Conflict, "the space kept changing while rotating its key")))
}

/// After the accelerator refused something sealed under this account's newest key
/// (`Conflict`): takes any newer key, and rotates if a rotation is due. Whether
/// the newest epoch held moved, so that the refused work is worth redoing.
pub async fn settle(session: &Session, space_id: &str) -> SdkResult<bool> {
    let before = keyring::newest(session, space_id).await?.0;
    let state = keyring::catch_up(session, space_id).await?;
    if state.rotation_due {
        rotate(session, space_id, None).await?;
    }
    Ok(keyring::newest(session, space_id).await?.0 != before)
}

/// Brings a space this account holds up to date as a call comes across it: takes
/// a newer key, makes a due rotation, and enters a roster this account is missing
/// from (a member from before rosters). Failures are left for the next call.
pub async fn tend(session: &Session, info: &SpaceInfo) {
    let id = &info.space_id;
    let result = async {
        if info.rotation_due && info.role >= Role::Writer {
            rotate(session, id, None).await?;
        } else if !info.in_roster {
            let (epoch, key) = keyring::newest(session, id).await?;
            if epoch == info.epoch {
                enter_roster(session, id, epoch, &key).await?;
            }
        }
        Ok::<_, SdkError>(())
    };
    if let Err(e) = result.await {
        crate::js::warn(&format!("coffer: space {id:?}: {}", e.message));
    }
}

/// This account's roster entry for a space: its MAC under `key`, base64url.
pub async fn roster_entry(session: &Session, space_id: &str, key: &SpaceKey) -> SdkResult<String> {
    let user = session.user()?;
    session.require_published_key()?;
    Ok(b64::encode(roster_mac(key, space_id, &user.user_id, &user.identity.public_key())))
}

/// Enters this account in the space's roster (a member from before rosters).
pub async fn enter_roster(session: &Session, space_id: &str, epoch: u32, key: &SpaceKey) -> SdkResult<()> {
    let roster_mac = roster_entry(session, space_id, key).await?;
    let path = format!("{}/roster", space_path(space_id)?);
    session.http.post_empty(&path, &RosterEntryRequest { epoch, roster_mac }).await
}

/// Every member of a space with their roster entries; a malformed one stops a
/// rotation (it cannot be left out without being named).
async fn members(session: &Session, space_id: &str) -> SdkResult<Vec<Member>> {
    let path = format!("{}/members", space_path(space_id)?);
    let (mut members, mut pages) = (Vec::new(), PageWalk::default());
    while let Some(after) = pages.next_after() {
        let answer: MembersResponse<Listed<Member>> = session.http.get(&page_path(&path, after)).await?;
        pages.answered(answer.members.len(), answer.next)?;
        for listed in answer.members {
            match listed {
                Listed::Ok(member) => members.push(member),
                Listed::Malformed { id, reason } => {
                    return Err(SdkError::new(
                        ErrorCode::Integrity,
                        format!(
                            "the accelerator listed a malformed member ({id:?}: {reason}); the key was not rotated"
                        ),
                    ));
                }
            }
        }
    }
    Ok(members)
}
