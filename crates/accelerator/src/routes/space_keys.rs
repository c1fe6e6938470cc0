//! A space's key epochs (SPEC.md F.12): entering the roster, reading the keys, and
//! rotating the key. Any member — reader, writer or owner — may enter the roster and
//! read the keys; only writers and owners may rotate (a reader gets `Forbidden`, as
//! on the other writers' routes), and only while a rotation is due; outsiders get
//! `Forbidden`, as on every space route.
//!
//! The accelerator never sees a space key. It keeps what members made — each
//! member's roster entry (a MAC under the current key), the current key sealed to
//! each member, and each epoch's link (the previous key sealed under the new one) —
//! checks only their lengths, and enforces who may write what at which epoch, in the
//! transaction of the write:
//!
//! - a rotation must make exactly the next epoch (of two racing to one epoch, one
//!   wins and the other gets `Conflict`), only while a rotation is due (a member
//!   left or was removed since the last one; otherwise `Conflict`: the key changes
//!   when a member goes, not at any member's will), by a writer or owner with a
//!   roster entry, for exactly the members that have one; it stores the link and
//!   the new sealed name, gives each listed member their new sealed key and entry,
//!   clears both for every other member, clears the rotation due, and deletes every
//!   invite;
//! - a roster entry is for the current epoch only, and the account must have
//!   published its public key. It may be entered while a rotation is due, so that a
//!   member from before rosters can enter and then rotate.
//!
//! A member reads the keys with `GET /v1/spaces/{space}/keys?after=E`: the current
//! epoch, whether a rotation is due, whether they have a roster entry, the name
//! sealed under the current key, the key sealed to them, and the links after the
//! epoch they hold, from which their SDK proves the new key leads back to the one it
//! holds.

use axum::extract::State;
use axum::http::StatusCode;
use coffer_core::epoch::{EPOCH_LINK_LEN, MAX_EPOCH, SEALED_EPOCH_KEY_LEN};
use coffer_core::proto::storage::{
    MAX_LINKS_PER_ANSWER, RosterEntryRequest, RotateRequest, SpaceInfo, SpaceKeysQuery, SpaceKeysResponse,
};

use crate::error::{ApiError, Json, Path, Query};
use crate::routes::spaces::{MAX_SEALED_NAME_BYTES, check_id, check_user_id, exact_bytes, roster_mac, sealed_bytes};
use crate::session::Authed;
use crate::state::{AppState, now_ms};
use crate::store::{RotatedKey, Rotation};

/// The rotate route's body limit: room for some fifteen thousand members (each
/// about 230 bytes of JSON), far more than a space shared by people has.
pub const MAX_ROTATE_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `POST /v1/spaces/{space}/roster` (members): sets the caller's roster entry,
/// made under the current epoch's key. 204.
pub async fn enter_roster(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Json(req): Json<RosterEntryRequest>,
) -> Result<StatusCode, ApiError> {
    check_id(&space_id, "the space id")?;
    let mac = roster_mac(&req.roster_mac, "rosterMac")?;
    let actor = authed.session.user_id;
    state.records.enter_roster(&space_id, &actor, req.epoch, &mac).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/spaces/{space}/keys?after=E` (members): where the space's keys stand for
/// the caller, with the links of the epochs after `E` (0 if not given), oldest
/// first, at most [`MAX_LINKS_PER_ANSWER`].
pub async fn keys(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Query(query): Query<SpaceKeysQuery>,
) -> Result<Json<SpaceKeysResponse>, ApiError> {
    check_id(&space_id, "the space id")?;
    let after = query.after.unwrap_or(0);
    let actor = authed.session.user_id;
    let keys = state.records.space_keys(&space_id, &actor, after, MAX_LINKS_PER_ANSWER).await?;
    Ok(Json(SpaceKeysResponse::from(&keys)))
}

/// `POST /v1/spaces/{space}/rotate` (writers and owners, while a rotation is due):
/// makes the space's next epoch. Answers the caller's [`SpaceInfo`] at it.
pub async fn rotate(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Json(req): Json<RotateRequest>,
) -> Result<Json<SpaceInfo>, ApiError> {
    check_id(&space_id, "the space id")?;
    let rotation = rotation(req)?;
    let actor = authed.session.user_id;
    let space = state.records.rotate(&space_id, &actor, &rotation, now_ms()).await?;
    Ok(Json(SpaceInfo::from(&space)))
}

/// Checks a rotation's shape: its epoch within [`MAX_EPOCH`], the name as a new
/// space's, the link and each sealed key of their exact lengths, each member once.
fn rotation(req: RotateRequest) -> Result<Rotation, ApiError> {
    if req.epoch > MAX_EPOCH {
        return Err(ApiError::too_large(format!(
            "epoch {} is past {MAX_EPOCH}: a space's key may be rotated at most {MAX_EPOCH} times",
            req.epoch
        )));
    }
    let sealed_name = sealed_bytes(&req.sealed_name, "sealedName", MAX_SEALED_NAME_BYTES)?;
    let sealed_previous = exact_bytes(&req.sealed_previous, "sealedPrevious", EPOCH_LINK_LEN)?;
    let mut members = Vec::with_capacity(req.members.len());
    let mut seen = std::collections::HashSet::with_capacity(req.members.len());
    for (i, member) in req.members.into_iter().enumerate() {
        check_user_id(&member.user_id, &format!("members[{i}].userId"))?;
        let sealed_key = exact_bytes(&member.sealed_key, &format!("members[{i}].sealedKey"), SEALED_EPOCH_KEY_LEN)?;
        let roster_mac = roster_mac(&member.roster_mac, &format!("members[{i}].rosterMac"))?;
        if !seen.insert(member.user_id.clone()) {
            return Err(ApiError::invalid(format!("members lists user {} twice", member.user_id)));
        }
        members.push(RotatedKey { user_id: member.user_id, sealed_key, roster_mac });
    }
    Ok(Rotation { epoch: req.epoch, sealed_name, sealed_previous, members })
}
