//! The space routes: create, list, invite, join, members, leave, remove a member,
//! usage. Its key epochs' routes — roster, keys, rotate — are in
//! [`super::space_keys`].
//!
//! A space is an id, a name sealed under a key only its members hold, and its
//! members with their roles: readers read, writers also write and delete files,
//! owners also invite and remove members. The accelerator never sees the space key
//! or the name; an invite reaches it only as the hash of its secret
//! ([`coffer_core::space::invite_secret_hash`]).
//!
//! Every member has a roster entry (SPEC.md F.12): a MAC of their user id and
//! published public key under the space key, sent when they create the space or
//! join it, so the account must have published its key first (`Conflict`
//! otherwise). The members answer lists each member's public key and entry; a
//! member who rotates the key checks every entry, so the accelerator cannot add a
//! key of its own to the roster. Joining a space one is already a member of with a
//! valid invite replaces one's entry.
//!
//! The space key changes by epochs. A member leaving or being removed, when members
//! remain, makes a rotation due and deletes every invite of the space; until a
//! writer or owner rotates, invites (and file commits, [`super::files`]) are refused with
//! `Conflict`, and so is an invite for any epoch but the current one, so no token
//! hands out a key already replaced. Every [`SpaceInfo`] carries the space's epoch,
//! whether a rotation is due, and whether the caller has a roster entry.
//!
//! Outsiders learn nothing: every route on a space answers `Forbidden` to a
//! non-member, and the same `Forbidden` for a space that does not exist.
//!
//! A space keeps an owner while it has members: its last owner can neither leave
//! nor be removed until the other members are gone. When the last member leaves,
//! the space is deleted with its invites, files and links, and their shards are
//! freed.

use axum::extract::State;
use axum::http::StatusCode;
use coffer_core::b64;
use coffer_core::epoch::ROSTER_MAC_LEN;
use coffer_core::proto::PageQuery;
use coffer_core::proto::storage::{
    CreateInviteRequest, CreateSpaceRequest, ID_BYTES, InviteInfo, JoinSpaceRequest, MembersResponse,
    RemoveMemberRequest, Role, SpaceInfo, SpaceListResponse, UsageResponse, is_id,
};
use coffer_core::space::{INVITE_SECRET_LEN, InviteSecret, invite_secret_hash};

use crate::error::{ApiError, Json, Path, Query, page_request};
use crate::session::Authed;
use crate::state::{AppState, now_ms};
use crate::store::{Invite, Withdrawn};

/// Longest sealed space name, in bytes (a sealed name is the name plus 29 bytes).
pub const MAX_SEALED_NAME_BYTES: usize = 1024;
/// An invite's lifetime when the request names none: 7 days.
pub const DEFAULT_INVITE_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;
/// Longest invite lifetime: 90 days.
pub const MAX_INVITE_TTL_MS: u64 = 90 * 24 * 60 * 60 * 1000;
/// Most joins one invite may allow.
pub const MAX_INVITE_USES: u32 = 1000;
/// Bytes of a user id before base64url.
pub const USER_ID_BYTES: usize = 16;

/// Checks an id the client drew: [`ID_BYTES`] bytes, base64url.
pub fn check_id(text: &str, what: &str) -> Result<(), ApiError> {
    if !is_id(text) {
        return Err(ApiError::invalid(format!("{what} must be {ID_BYTES} random bytes in base64url (22 characters)")));
    }
    Ok(())
}

/// Checks a user id: [`USER_ID_BYTES`] bytes, base64url.
pub fn check_user_id(text: &str, what: &str) -> Result<(), ApiError> {
    if text.len() > 64 || b64::decode_array::<USER_ID_BYTES>(text).is_none() {
        return Err(ApiError::invalid(format!("{what} must be {USER_ID_BYTES} bytes of base64url")));
    }
    Ok(())
}

/// Decodes a roster entry's MAC: [`ROSTER_MAC_LEN`] bytes, base64url.
pub fn roster_mac(text: &str, what: &str) -> Result<[u8; ROSTER_MAC_LEN], ApiError> {
    b64::decode_array(text)
        .ok_or_else(|| ApiError::invalid(format!("{what} must be {ROSTER_MAC_LEN} bytes of base64url")))
}

/// Decodes a base64url field of exactly `len` bytes.
pub fn exact_bytes(text: &str, what: &str, len: usize) -> Result<Vec<u8>, ApiError> {
    b64::decode(text)
        .filter(|bytes| bytes.len() == len)
        .ok_or_else(|| ApiError::invalid(format!("{what} must be {len} bytes of base64url")))
}

/// Decodes a sealed base64url field of 1 to `max` bytes.
pub fn sealed_bytes(text: &str, what: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    // Four characters per three bytes: refuse the oversized before decoding them.
    let too_large = || ApiError::too_large(format!("{what} is over {max} bytes"));
    if text.len() > max.div_ceil(3) * 4 {
        return Err(too_large());
    }
    let bytes = b64::decode(text).ok_or_else(|| ApiError::invalid(format!("{what} must be base64url")))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(format!("{what} must not be empty")));
    }
    if bytes.len() > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `POST /v1/spaces`: the caller becomes the new space's owner, at epoch 0, with
/// their roster entry. The caller's account must have published its public key.
pub async fn create(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<CreateSpaceRequest>,
) -> Result<Json<SpaceInfo>, ApiError> {
    check_id(&req.space_id, "spaceId")?;
    let name = sealed_bytes(&req.sealed_name, "sealedName", MAX_SEALED_NAME_BYTES)?;
    let mac = roster_mac(&req.roster_mac, "rosterMac")?;
    let user = authed.session.user_id;
    let now = now_ms();
    let allowance = state.config.user_allowance_bytes;
    let space = state.records.create_space(&req.space_id, &name, &user, &mac, now, allowance).await?;
    Ok(Json(SpaceInfo::from(&space)))
}

/// `GET /v1/spaces`: the caller's spaces with their role, oldest first.
pub async fn list(
    State(state): State<AppState>,
    authed: Authed,
    Query(page): Query<PageQuery>,
) -> Result<Json<SpaceListResponse>, ApiError> {
    let page = page_request(page)?;
    let user = authed.session.user_id;
    let spaces = state.records.spaces_of(&user, &page).await?;
    Ok(Json(SpaceListResponse { spaces: spaces.items.iter().map(SpaceInfo::from).collect(), next: spaces.next }))
}

/// `POST /v1/spaces/{space}/invites` (owners): registers an invite's secret hash, for
/// a token carrying the current epoch's key while no rotation is due.
pub async fn invite(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Json(req): Json<CreateInviteRequest>,
) -> Result<Json<InviteInfo>, ApiError> {
    check_id(&space_id, "the space id")?;
    let secret_hash: [u8; 32] = b64::decode_array(&req.secret_hash)
        .ok_or_else(|| ApiError::invalid("secretHash must be 32 bytes of base64url"))?;
    if req.role == Role::Owner {
        return Err(ApiError::invalid("an invite grants the reader or writer role, never owner"));
    }
    let ttl = req.expires_in_ms.unwrap_or(DEFAULT_INVITE_TTL_MS);
    if ttl == 0 || ttl > MAX_INVITE_TTL_MS {
        return Err(ApiError::invalid(format!(
            "expiresInMs must be between 1 and {MAX_INVITE_TTL_MS} (90 days); leave it out for 7 days"
        )));
    }
    let max_uses = req.max_uses.unwrap_or(1);
    if max_uses == 0 || max_uses > MAX_INVITE_USES {
        return Err(ApiError::invalid(format!(
            "maxUses must be between 1 and {MAX_INVITE_USES}; leave it out for a single use"
        )));
    }
    let now = now_ms();
    let invite = Invite { space_id, secret_hash, role: req.role, expires_at_ms: now.saturating_add(ttl), max_uses };
    let info = InviteInfo { role: invite.role, expires_at_ms: invite.expires_at_ms, max_uses };
    let actor = authed.session.user_id;
    state.records.create_invite(&actor, &invite, req.epoch, now).await?;
    Ok(Json(info))
}

/// `POST /v1/spaces/join`: joins with an invite's secret and a roster entry under the
/// token's key; the caller's account must have published its public key. Joining a
/// space one is already a member of answers the membership with the entry replaced,
/// and leaves the invite unused.
pub async fn join(
    State(state): State<AppState>,
    authed: Authed,
    Json(req): Json<JoinSpaceRequest>,
) -> Result<Json<SpaceInfo>, ApiError> {
    check_id(&req.space_id, "spaceId")?;
    let secret: [u8; INVITE_SECRET_LEN] = b64::decode_array(&req.secret)
        .ok_or_else(|| ApiError::invalid(format!("secret must be {INVITE_SECRET_LEN} bytes of base64url")))?;
    let mac = roster_mac(&req.roster_mac, "rosterMac")?;
    let hash = invite_secret_hash(&req.space_id, &InviteSecret::from_bytes(secret));
    let user = authed.session.user_id;
    let now = now_ms();
    let space = state.records.join_space(&req.space_id, &hash, &user, &mac, now).await?;
    Ok(Json(SpaceInfo::from(&space)))
}

/// `GET /v1/spaces/{space}/members` (members): each with their role, published
/// public key and roster entry.
pub async fn members(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<MembersResponse>, ApiError> {
    check_id(&space_id, "the space id")?;
    let page = page_request(page)?;
    let actor = authed.session.user_id;
    let members = state.records.members(&space_id, &actor, &page).await?;
    Ok(Json(MembersResponse { members: members.items, next: members.next }))
}

/// `POST /v1/spaces/{space}/leave`: 204. The last member leaving deletes the space;
/// its files' shards that no other file uses are freed before the answer. Otherwise
/// a rotation is due and the space's invites are gone.
pub async fn leave(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&space_id, "the space id")?;
    let user = authed.session.user_id;
    let gone = state.records.leave_space(&space_id, &user).await?;
    if gone {
        state.unwind(Withdrawn::Space { space_id }).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/spaces/{space}/members/remove` (owners): 204. A rotation is due and the
/// space's invites are gone.
pub async fn remove_member(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Json(req): Json<RemoveMemberRequest>,
) -> Result<StatusCode, ApiError> {
    check_id(&space_id, "the space id")?;
    check_user_id(&req.user_id, "userId")?;
    let actor = authed.session.user_id;
    state.records.remove_member(&space_id, &actor, &req.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/spaces/{space}/usage` (members).
pub async fn usage(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
) -> Result<Json<UsageResponse>, ApiError> {
    check_id(&space_id, "the space id")?;
    let actor = authed.session.user_id;
    let used_bytes = state.records.space_usage(&space_id, &actor).await?;
    Ok(Json(UsageResponse { used_bytes, quota_bytes: state.config.space_quota_bytes }))
}
