//! `client.space`: shared spaces — create, list, invite, join, members, leave,
//! remove a member, usage. A space's key lives only with its members (in their
//! sealed `$spaces` collection and in invite tokens); the accelerator keeps the
//! membership, the roles, the roster and the space's name sealed under that key.
//! Removing a member rotates the key (`rotation`, SPEC.md F.12).

use std::rc::Rc;

use coffer_core::epoch::EpochKeys;
use coffer_core::proto::answer::{Listed, PageWalk};
use coffer_core::proto::storage::{
    CreateInviteRequest, CreateSpaceRequest, InviteInfo, JoinSpaceRequest, Member, MembersResponse,
    RemoveMemberRequest, Role, SpaceInfo, SpaceListResponse, UsageResponse,
};
use coffer_core::space::{self, InviteSecret, InviteToken, SpaceError, SpaceKey};
use coffer_core::{ErrorCode, b64};
use js_sys::Promise;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::{SdkError, SdkResult};
use crate::js::to_js;
use crate::keyring;
use crate::listing::{Listing, page_path};
use crate::options::{self, Text, Whole, string_arg};
use crate::random;
use crate::rotation;
use crate::session::{Session, call};

/// Shared spaces (`client.space`). Typed in the `.d.ts` by the `Spaces` interface.
#[wasm_bindgen]
pub struct Spaces {
    session: Rc<Session>,
}

impl Spaces {
    /// A handle on the client's spaces.
    pub fn new(session: Rc<Session>) -> Self {
        Spaces { session }
    }
}

/// The role an invite gives: `"reader"` (default) or `"writer"`.
#[derive(Deserialize)]
#[serde(try_from = "Text")]
struct InviteRole(Role);

impl TryFrom<Text> for InviteRole {
    type Error = String;

    fn try_from(Text(name): Text) -> Result<Self, String> {
        match name.as_str() {
            "reader" => Ok(InviteRole(Role::Reader)),
            "writer" => Ok(InviteRole(Role::Writer)),
            other => Err(format!("must be \"reader\" or \"writer\", not {other:?} (owners cannot be invited)")),
        }
    }
}

/// `{ name }` of `create`.
#[derive(Deserialize)]
struct CreateOptions {
    name: Text,
}

/// `{ role?, expiresIn?, maxUses? }` of `invite`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InviteOptions {
    role: Option<InviteRole>,
    expires_in: Option<Whole>,
    max_uses: Option<Whole>,
}

/// A space as JS sees it (`SpaceInfo` in types.d.ts).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpaceView {
    id: String,
    /// `null` when this account holds no key for the space.
    name: Option<String>,
    /// `"owner"`, `"writer"` or `"reader"` (the wire's names).
    role: Role,
    created_at: f64,
}

/// A member as JS sees it (`SpaceMember`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberView<'a> {
    user_id: &'a str,
    username: &'a str,
    /// `"owner"`, `"writer"` or `"reader"` (the wire's names).
    role: Role,
    joined_at: f64,
}

/// A space's metered bytes (`SpaceUsage`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageView {
    used_bytes: f64,
    quota_bytes: f64,
}

/// Base path of a space's routes, checking the id first.
pub fn space_path(space_id: &str) -> SdkResult<String> {
    if !coffer_core::proto::storage::is_id(space_id) {
        return Err(SdkError::invalid(format!("{space_id:?} is not a space id (22 base64url characters)")));
    }
    Ok(format!("/v1/spaces/{space_id}"))
}

/// A space as JS sees it: `{ id, name, role, createdAt }`; the name is `null` when
/// this account holds no key for the space, and `Integrity` when it does not open.
/// A space this account holds is brought up to date on the way (`rotation::tend`).
async fn describe(session: &Session, info: &SpaceInfo) -> SdkResult<JsValue> {
    let key = match keyring::find(session, &info.space_id).await? {
        // A member the last rotation left out holds no key for this epoch.
        Some(_) => match keyring::for_epoch(session, &info.space_id, info.epoch).await {
            Err(e) if e.code == ErrorCode::Forbidden => None,
            key => Some(key?),
        },
        None => None,
    };
    let name = match key {
        Some(key) => {
            rotation::tend(session, info).await;
            let sealed = b64::decode(&info.sealed_name).ok_or(SpaceError::NameDecrypt)?;
            Some(space::open_space_name(&key, &info.space_id, &sealed)?)
        }
        None => None,
    };
    Ok(to_js(&SpaceView { id: info.space_id.clone(), name, role: info.role, created_at: info.created_at_ms as f64 }))
}

/// The key this account holds for the space's current epoch, if it holds any and is
/// a member: a key held from before a rotation this account was left out of, or
/// from before it was removed, is no key to defend against an invite's.
async fn current_key(session: &Session, space_id: &str) -> SdkResult<Option<SpaceKey>> {
    if keyring::find(session, space_id).await?.is_none() {
        return Ok(None);
    }
    match keyring::catch_up(session, space_id).await {
        Ok(state) => Ok(keyring::require(session, space_id).await?.get(state.epoch).cloned()),
        Err(e) if e.code == ErrorCode::Forbidden => Ok(None),
        Err(e) => Err(e),
    }
}

fn id_arg(value: &JsValue) -> SdkResult<String> {
    let id = string_arg(value, "spaceId")?;
    space_path(&id)?;
    Ok(id)
}

#[wasm_bindgen]
impl Spaces {
    /// Creates a space owned by this account; resolves to `{ id, name, role }`.
    #[wasm_bindgen(skip_typescript)]
    pub fn create(&self, options: JsValue) -> Promise {
        call(
            &self.session,
            options::read(&options, "space.create options").map(|CreateOptions { name: Text(name) }| name),
            move |session, name| async move {
                session.user()?;
                let space_id = b64::encode(random::bytes::<16>());
                let key = SpaceKey::from_bytes(random::bytes());
                let sealed = space::seal_space_name(&key, &space_id, &name, random::bytes())?;
                let roster_mac = rotation::roster_entry(&session, &space_id, &key).await?;
                // The key is recorded before the space exists, so a space is never
                // created whose key was lost on the way.
                keyring::store(&session, &space_id, &EpochKeys::new(&space_id, 0, key)).await?;
                let request =
                    CreateSpaceRequest { space_id: space_id.clone(), sealed_name: b64::encode(sealed), roster_mac };
                let info: SpaceInfo = match session.http.post("/v1/spaces", &request).await {
                    Ok(info) => info,
                    Err(e) => {
                        let _ = keyring::forget(&session, &space_id).await;
                        return Err(e);
                    }
                };
                info.check_is(&space_id)?;
                describe(&session, &info).await
            },
        )
    }

    /// The spaces this account is a member of, oldest first; a space whose entry is
    /// malformed or whose name does not open is listed in `skipped` instead.
    #[wasm_bindgen(skip_typescript)]
    pub fn list(&self) -> Promise {
        call(&self.session, Ok(()), move |session, ()| async move {
            session.user()?;
            let (listing, mut pages) = (Listing::default(), PageWalk::default());
            while let Some(after) = pages.next_after() {
                let answer: SpaceListResponse<Listed<SpaceInfo>> =
                    session.http.get(&page_path("/v1/spaces", after)).await?;
                pages.answered(answer.spaces.len(), answer.next)?;
                for info in answer.spaces.into_iter().filter_map(|listed| listing.well_formed(listed)) {
                    listing.add(&info.space_id, describe(&session, &info).await)?;
                }
            }
            Ok(listing.finish())
        })
    }

    /// Makes an invite token: `{ role?: "reader" | "writer", expiresIn?: ms, maxUses? }`.
    /// The token carries the space key: hand it over only to the person invited.
    #[wasm_bindgen(skip_typescript)]
    pub fn invite(&self, space_id: JsValue, options: Option<JsValue>) -> Promise {
        let parsed = (|| {
            let space_id = id_arg(&space_id)?;
            let o: InviteOptions = options::read_optional(options, "space.invite options")?;
            let role = o.role.map_or(Role::Reader, |InviteRole(role)| role);
            Ok::<_, SdkError>((space_id, role, o.expires_in, o.max_uses))
        })();
        call(&self.session, parsed, move |session, (space_id, role, expires_in_ms, max_uses)| async move {
            session.user()?;
            let secret = InviteSecret::from_bytes(random::bytes());
            let path = format!("{}/invites", space_path(&space_id)?);
            let expires_in_ms = expires_in_ms.map(|Whole(ms)| ms);
            let max_uses = max_uses.map(|Whole(n)| u32::try_from(n).unwrap_or(u32::MAX));
            let mut settled = false;
            // The token carries the newest key: an invite for a replaced key (or while
            // a rotation is due) is refused, and made again once the key is current.
            let key = loop {
                let (epoch, key) = keyring::newest(&session, &space_id).await?;
                let request = CreateInviteRequest {
                    secret_hash: b64::encode(space::invite_secret_hash(&space_id, &secret)),
                    role,
                    expires_in_ms,
                    max_uses,
                    epoch,
                };
                match session.http.post::<_, InviteInfo>(&path, &request).await {
                    Ok(_) => break key,
                    Err(e) if e.code == ErrorCode::Conflict && !settled => {
                        settled = true;
                        if !rotation::settle(&session, &space_id).await? {
                            return Err(e);
                        }
                    }
                    Err(e) => return Err(e),
                }
            };
            let token = InviteToken { space_id, space_key: key, secret };
            let text = token.encode()?;
            Ok(JsValue::from(text.as_str()))
        })
    }

    /// Joins a space with an invite token; resolves to `{ id, name, role }`.
    ///
    /// The token's key is trusted only once it is proven: it must open the space's
    /// sealed name (`Integrity` otherwise, and no key is saved), and it never
    /// replaces a different key this account already holds for the space (`Conflict`,
    /// before the accelerator is asked; the held key is kept).
    #[wasm_bindgen(skip_typescript)]
    pub fn join(&self, token: JsValue) -> Promise {
        call(
            &self.session,
            string_arg(&token, "token").and_then(|t| Ok(InviteToken::parse(&t)?)),
            move |session, token| async move {
                session.user()?;
                let held = current_key(&session, &token.space_id).await?;
                token.check_held_key(held.as_ref())?;
                let roster_mac = rotation::roster_entry(&session, &token.space_id, &token.space_key).await?;
                let request = JoinSpaceRequest {
                    space_id: token.space_id.clone(),
                    secret: b64::encode(token.secret.as_bytes()),
                    roster_mac,
                };
                let info: SpaceInfo = session.http.post("/v1/spaces/join", &request).await?;
                info.check_is(&token.space_id)?;
                token.check_key(&b64::decode(&info.sealed_name).unwrap_or_default())?;
                let keys = keyring::adopt(&session, &token.space_id, info.epoch, token.space_key.clone()).await?;
                // Joining again is harmless (it does not use up the invite), so if the key
                // cannot be recorded the caller can simply retry the join.
                keyring::store(&session, &token.space_id, &keys).await.map_err(|e| {
                    SdkError::new(
                        e.code,
                        format!("joined the space, but could not save its key ({}); call join again", e.message),
                    )
                })?;
                describe(&session, &info).await
            },
        )
    }

    /// The members of a space: `[{ userId, username, role, joinedAt }]`; a malformed
    /// entry is listed in `skipped` instead.
    #[wasm_bindgen(skip_typescript)]
    pub fn members(&self, space_id: JsValue) -> Promise {
        call(&self.session, id_arg(&space_id), move |session, space_id| async move {
            session.user()?;
            let path = format!("{}/members", space_path(&space_id)?);
            let (listing, mut pages) = (Listing::default(), PageWalk::default());
            while let Some(after) = pages.next_after() {
                let answer: MembersResponse<Listed<Member>> = session.http.get(&page_path(&path, after)).await?;
                pages.answered(answer.members.len(), answer.next)?;
                for m in answer.members.into_iter().filter_map(|listed| listing.well_formed(listed)) {
                    listing.push(&to_js(&MemberView {
                        user_id: &m.user_id,
                        username: &m.username,
                        role: m.role,
                        joined_at: m.joined_at_ms as f64,
                    }));
                }
            }
            Ok(listing.finish())
        })
    }

    /// Leaves a space (the last owner cannot leave while others remain).
    #[wasm_bindgen(skip_typescript)]
    pub fn leave(&self, space_id: JsValue) -> Promise {
        call(&self.session, id_arg(&space_id), move |session, space_id| async move {
            session.user()?;
            session.http.post_empty(&format!("{}/leave", space_path(&space_id)?), &()).await?;
            keyring::forget(&session, &space_id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Removes a member (owners only).
    #[wasm_bindgen(skip_typescript, js_name = removeMember)]
    pub fn remove_member(&self, space_id: JsValue, user_id: JsValue) -> Promise {
        let parsed = id_arg(&space_id).and_then(|s| Ok((s, string_arg(&user_id, "userId")?)));
        call(&self.session, parsed, move |session, (space_id, user_id)| async move {
            session.user()?;
            let path = format!("{}/members/remove", space_path(&space_id)?);
            session.http.post_empty(&path, &RemoveMemberRequest { user_id: user_id.clone() }).await?;
            // A new key the removed member never sees: until it exists, the accelerator
            // takes no new file or invite (and any member's next call makes it).
            rotation::rotate(&session, &space_id, Some(&user_id)).await.map_err(|e| {
                SdkError::new(
                    e.code,
                    format!(
                        "the member was removed, but the space's key was not rotated yet ({}); no file can be added until it is, which the next call on the space retries",
                        e.message
                    ),
                )
            })?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The space's metered bytes: `{ usedBytes, quotaBytes }`.
    #[wasm_bindgen(skip_typescript)]
    pub fn usage(&self, space_id: JsValue) -> Promise {
        call(&self.session, id_arg(&space_id), move |session, space_id| async move {
            session.user()?;
            let answer: UsageResponse = session.http.get(&format!("{}/usage", space_path(&space_id)?)).await?;
            Ok(to_js(&UsageView { used_bytes: answer.used_bytes as f64, quota_bytes: answer.quota_bytes as f64 }))
        })
    }
}
