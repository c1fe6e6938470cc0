//! Spaces over real HTTP: creating, listing, invites (roles, expiry, uses), joining,
//! members, leaving and removing, and what outsiders see.

mod common;

use std::time::Duration;

use coffer_core::ErrorCode::*;
use coffer_core::b64;
use coffer_core::proto::storage::*;
use coffer_core::space::{InviteSecret, invite_secret_hash};
use common::*;
use serde_json::json;

fn token_text(token: &coffer_core::space::InviteToken) -> String {
    token.encode().unwrap().to_string()
}

#[tokio::test]
async fn create_and_list() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let first = ada.create_space(&api).await;
    let second = ada.create_space(&api).await;
    let list: SpaceListResponse = ada.get_json(&api, "/v1/spaces").await.unwrap();
    let ids: Vec<&str> = list.spaces.iter().map(|s| s.space_id.as_str()).collect();
    assert_eq!(ids, [first.id.as_str(), second.id.as_str()], "oldest first");
    assert!(list.spaces.iter().all(|s| s.role == Role::Owner));
    let bobs: SpaceListResponse = bob.get_json(&api, "/v1/spaces").await.unwrap();
    assert!(bobs.spaces.is_empty(), "nobody sees another's spaces");

    // A taken id is a conflict, whoever asks.
    let again = CreateSpaceRequest {
        space_id: first.id.clone(),
        sealed_name: sealed(40),
        roster_mac: bob.roster_mac(&first.id, &first.key),
    };
    let err = api.call::<SpaceInfo>("/v1/spaces", Some(bob.token()), &again).await.unwrap_err();
    assert_eq!(err.code, Conflict);
    Api::expect_error(api.get("/v1/spaces", None).await, Unauthorized);
}

#[tokio::test]
async fn an_invite_admits_with_its_role_as_often_as_it_allows() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let cy = sign_up(&api, "cy", "pw").await;
    let dee = sign_up(&api, "dee", "pw").await;
    let space = ada.create_space(&api).await;

    let two = token_text(&ada.invite(&api, &space, Role::Writer, None, Some(2)).await.unwrap());
    let joined = bob.join(&api, &two).await.unwrap();
    assert_eq!((joined.space_id.as_str(), joined.role), (space.id.as_str(), Role::Writer));
    // Joining again is not a second use.
    assert_eq!(bob.join(&api, &two).await.unwrap().role, Role::Writer);
    cy.join(&api, &two).await.unwrap();
    let err = dee.join(&api, &two).await.unwrap_err();
    assert_eq!(err.code, Forbidden);
    assert!(err.message.contains("used"), "{}", err.message);
    // Members still get their membership back from a used-up invite.
    assert_eq!(cy.join(&api, &two).await.unwrap().role, Role::Writer);

    // The default is one use.
    let once = token_text(&ada.invite(&api, &space, Role::Reader, None, None).await.unwrap());
    assert_eq!(dee.join(&api, &once).await.unwrap().role, Role::Reader);

    let members: MembersResponse = dee.get_json(&api, &space.path("/members")).await.unwrap();
    let names: Vec<(&str, Role)> = members.members.iter().map(|m| (m.username.as_str(), m.role)).collect();
    assert_eq!(names, [("ada", Role::Owner), ("bob", Role::Writer), ("cy", Role::Writer), ("dee", Role::Reader)]);
    assert_eq!(members.members[1].user_id, bob.user_id());
    let listed: SpaceListResponse = dee.get_json(&api, "/v1/spaces").await.unwrap();
    assert_eq!(listed.spaces.len(), 1);
    assert_eq!(listed.spaces[0].role, Role::Reader);
}

#[tokio::test]
async fn expired_and_wrong_invites_are_forbidden() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let space = ada.create_space(&api).await;

    let brief = ada.invite(&api, &space, Role::Reader, Some(1), Some(5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = bob.join(&api, &token_text(&brief)).await.unwrap_err();
    assert_eq!(err.code, Forbidden);
    assert!(err.message.contains("expired"), "{}", err.message);

    // A secret the space never registered, and a real secret presented for another space.
    let good = ada.invite(&api, &space, Role::Reader, None, None).await.unwrap();
    let forged = coffer_core::space::InviteToken { secret: InviteSecret::from_bytes(random()), ..good.clone() };
    assert_eq!(bob.join(&api, &token_text(&forged)).await.unwrap_err().code, Forbidden);
    let other = ada.create_space(&api).await;
    let moved = coffer_core::space::InviteToken { space_id: other.id.clone(), ..good.clone() };
    assert_eq!(bob.join(&api, &token_text(&moved)).await.unwrap_err().code, Forbidden);
    let nowhere = coffer_core::space::InviteToken { space_id: new_id(), ..good.clone() };
    assert_eq!(bob.join(&api, &token_text(&nowhere)).await.unwrap_err().code, Forbidden);
    // None of that used the real invite up.
    assert_eq!(bob.join(&api, &token_text(&good)).await.unwrap().role, Role::Reader);
}

#[tokio::test]
async fn only_owners_invite_and_never_as_owner() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let eve = sign_up(&api, "eve", "pw").await;
    let space = ada.create_space(&api).await;
    let writer = token_text(&ada.invite(&api, &space, Role::Writer, None, None).await.unwrap());
    bob.join(&api, &writer).await.unwrap();

    assert_eq!(bob.invite(&api, &space, Role::Reader, None, None).await.unwrap_err().code, Forbidden);
    assert_eq!(eve.invite(&api, &space, Role::Reader, None, None).await.unwrap_err().code, Forbidden);
    assert_eq!(ada.invite(&api, &space, Role::Owner, None, None).await.unwrap_err().code, InvalidInput);

    let hash = b64::encode(invite_secret_hash(&space.id, &InviteSecret::from_bytes(random())));
    let path = space.path("/invites");
    let t = Some(ada.token());
    for body in [
        json!({"secretHash": hash, "role": "owner"}),
        json!({"secretHash": hash, "role": "admin"}),
        json!({"secretHash": hash, "role": "reader", "expiresInMs": 0}),
        json!({"secretHash": hash, "role": "reader", "expiresInMs": 91u64 * 24 * 3600 * 1000}),
        json!({"secretHash": hash, "role": "reader", "expiresInMs": -1}),
        json!({"secretHash": hash, "role": "reader", "maxUses": 0}),
        json!({"secretHash": hash, "role": "reader", "maxUses": 1001}),
        json!({"secretHash": "short", "role": "reader"}),
        json!({"secretHash": hash}),
    ] {
        Api::expect_error(api.post(&path, t, &body).await, InvalidInput);
    }
    let info: InviteInfo =
        api.call(&path, t, &json!({"secretHash": hash, "role": "reader", "maxUses": 1000})).await.unwrap();
    assert_eq!(info.max_uses, 1000);
    let week = 7 * 24 * 3600 * 1000;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(info.expires_at_ms > now + week - 60_000 && info.expires_at_ms <= now + week + 60_000, "7 days by default");
}

#[tokio::test]
async fn outsiders_get_forbidden_for_spaces_that_exist_or_not() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let eve = sign_up(&api, "eve", "pw").await;
    let space = ada.create_space(&api).await;
    let (address, bytes) = shards_of(b"chunk").remove(0);
    ada.upload(&api, &[(address, bytes)]).await;
    let file = ada.commit(&api, &space, &[address]).await.unwrap();

    let nowhere = TestSpace { id: new_id(), key: space.key.clone(), epoch: 0 };
    for s in [&space, &nowhere] {
        assert_eq!(eve.files(&api, s).await.unwrap_err().code, Forbidden);
        assert_eq!(eve.used(&api, s).await.unwrap_err().code, Forbidden);
        let members = eve.get_json::<MembersResponse>(&api, &s.path("/members")).await.unwrap_err();
        assert_eq!(members.code, Forbidden);
        let get = eve.get_json::<FileEntry>(&api, &s.path(&format!("/files/{}", file.file_id))).await;
        assert_eq!(get.unwrap_err().code, Forbidden);
        assert_eq!(eve.delete_file(&api, s, &file.file_id).await.unwrap_err().code, Forbidden);
        assert_eq!(eve.commit(&api, s, &[address]).await.unwrap_err().code, Forbidden);
        assert_eq!(eve.post_empty(&api, &s.path("/leave"), &json!({})).await.unwrap_err().code, Forbidden);
        let remove = RemoveMemberRequest { user_id: ada.user_id().into() };
        assert_eq!(eve.post_empty(&api, &s.path("/members/remove"), &remove).await.unwrap_err().code, Forbidden);
        assert_eq!(eve.invite(&api, s, Role::Reader, None, None).await.unwrap_err().code, Forbidden);
    }
    // Nothing changed for the owner.
    assert_eq!(ada.files(&api, &space).await.unwrap().len(), 1);
}

#[tokio::test]
async fn leaving_and_removing_keep_an_owner() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let cy = sign_up(&api, "cy", "pw").await;
    let space = ada.create_space(&api).await;
    let invite = token_text(&ada.invite(&api, &space, Role::Writer, None, Some(5)).await.unwrap());
    bob.join(&api, &invite).await.unwrap();
    cy.join(&api, &invite).await.unwrap();
    let remove = |user: &Account| RemoveMemberRequest { user_id: user.user_id().into() };
    let leave = space.path("/leave");
    let remove_path = space.path("/members/remove");

    // The last owner can neither leave nor be removed while others remain.
    assert_eq!(ada.post_empty(&api, &leave, &json!({})).await.unwrap_err().code, Conflict);
    assert_eq!(ada.post_empty(&api, &remove_path, &remove(&ada)).await.unwrap_err().code, Conflict);
    // Only owners remove.
    assert_eq!(bob.post_empty(&api, &remove_path, &remove(&cy)).await.unwrap_err().code, Forbidden);
    ada.post_empty(&api, &remove_path, &remove(&cy)).await.unwrap();
    assert_eq!(cy.files(&api, &space).await.unwrap_err().code, Forbidden, "removed means out");
    assert_eq!(ada.post_empty(&api, &remove_path, &remove(&cy)).await.unwrap_err().code, NotFound);
    let bad = RemoveMemberRequest { user_id: "not an id".into() };
    assert_eq!(ada.post_empty(&api, &remove_path, &bad).await.unwrap_err().code, InvalidInput);

    // A writer leaves freely; then the owner is the last member and may leave too.
    bob.post_empty(&api, &leave, &json!({})).await.unwrap();
    let members: MembersResponse = ada.get_json(&api, &space.path("/members")).await.unwrap();
    assert_eq!(members.members.len(), 1);
    ada.post_empty(&api, &leave, &json!({})).await.unwrap();
    let list: SpaceListResponse = ada.get_json(&api, "/v1/spaces").await.unwrap();
    assert!(list.spaces.is_empty());
    // The space is gone with its invites: the old token no longer admits anyone.
    assert_eq!(cy.join(&api, &invite).await.unwrap_err().code, Forbidden);
}

#[tokio::test]
async fn the_last_member_leaving_frees_the_spaces_shards() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let other = ada.create_space(&api).await;
    let shards = shards_of(b"chunk");
    ada.upload(&api, &shards).await;
    ada.commit(&api, &space, &addresses(&shards)).await.unwrap();
    // One shard is also in a file of another space (uploaded again for it: a commit
    // takes its writer's uploads and shards its own space's files use).
    ada.upload(&api, &shards[..1]).await;
    ada.commit(&api, &other, &addresses(&shards[..1])).await.unwrap();
    ada.post_empty(&api, &space.path("/leave"), &json!({})).await.unwrap();
    assert!(api.has_shard(&shards[0].0).await, "still referenced elsewhere");
    for (address, _) in &shards[1..] {
        assert!(!api.has_shard(address).await, "freed with the space");
    }
}
