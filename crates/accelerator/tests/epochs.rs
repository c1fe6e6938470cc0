//! Key epochs over real HTTP (SPEC.md F.12): published public keys, the roster the
//! accelerator cannot forge, rotation when a member goes, and the rules that keep
//! anything new from being sealed under a key a departed member holds.
//!
//! Every roster entry, sealed key, link and sealed name here is made with
//! `coffer_core`'s own crypto, as the SDK makes them, so the tests check that the
//! accelerator hands back exactly what members made: each member opens their key,
//! the chain leads back, every entry checks under the new key.

mod common;

use std::time::Duration;

use coffer_core::ErrorCode::{self, *};
use coffer_core::account::{self, RootSecret};
use coffer_core::b64;
use coffer_core::epoch::{self, EpochKeys, MAX_EPOCH};
use coffer_core::identity::UserKeys;
use coffer_core::kv::KvKeys;
use coffer_core::proto::storage::*;
use coffer_core::proto::{ChallengeRequest, ChallengeResponse, ErrorBody, PublishKeyRequest, SessionInfo};
use coffer_core::space::{self, InviteToken, SpaceKey};
use common::*;
use serde_json::json;

fn token_text(token: &InviteToken) -> String {
    token.encode().unwrap().to_string()
}

/// Fresh random bytes, as the SDK draws them.
fn draw(buf: &mut [u8]) {
    getrandom::fill(buf).expect("randomness");
}

async fn members(by: &Account, api: &Api, space: &TestSpace) -> Vec<Member> {
    by.get_json::<MembersResponse>(api, &space.path("/members")).await.expect("members").members
}

async fn keys(by: &Account, api: &Api, space: &TestSpace, after: Option<u32>) -> Result<SpaceKeysResponse, ErrorBody> {
    let query = after.map(|a| format!("?after={a}")).unwrap_or_default();
    by.get_json(api, &space.path(&format!("/keys{query}"))).await
}

/// The space as `by` sees it in their list.
async fn info(by: &Account, api: &Api, space: &TestSpace) -> SpaceInfo {
    let list: SpaceListResponse = by.get_json(api, "/v1/spaces").await.expect("spaces");
    list.spaces.into_iter().find(|s| s.space_id == space.id).expect("listed")
}

/// A rotation of `space` to its next epoch as `by`'s SDK makes it: from the members
/// the accelerator lists, every entry checked under the current key.
async fn rotation(by: &Account, api: &Api, space: &TestSpace) -> (RotateRequest, SpaceKey) {
    let listed = members(by, api, space).await;
    let fresh = SpaceKey::from_bytes(random());
    let made = epoch::rotate(&space.id, (space.epoch, &space.key), &listed, None, "Team", fresh, &mut draw)
        .expect("every entry checks");
    (made.request, made.key)
}

async fn rotate(by: &Account, api: &Api, space: &TestSpace, req: &RotateRequest) -> Result<SpaceInfo, ErrorBody> {
    api.call(&space.path("/rotate"), Some(by.token()), req).await
}

/// The space at its next epoch, under `key`.
fn next(space: &TestSpace, key: SpaceKey) -> TestSpace {
    TestSpace { id: space.id.clone(), key, epoch: space.epoch + 1 }
}

/// Asserts `by` holds `space`'s current key through the accelerator's answer: the key
/// sealed to them opens, and the links lead back to the key of epoch 0.
async fn holds_current_key(by: &Account, api: &Api, space: &TestSpace, first: &SpaceKey) {
    let answer = keys(by, api, space, None).await.expect("keys");
    assert_eq!((answer.epoch, answer.in_roster), (space.epoch, true));
    let sealed = b64::decode(answer.sealed_key.as_deref().expect("a key sealed to them")).unwrap();
    let key = epoch::open_epoch_key(&by.user_keys(), &space.id, space.epoch, by.user_id(), &sealed).expect("opens");
    assert_eq!(key, space.key, "{} holds the new key", by.username);
    let links: Vec<Vec<u8>> = answer.links.iter().map(|l| b64::decode(&l.sealed_previous).unwrap()).collect();
    let link = |e: u32| links.get(e as usize - 1).map(Vec::as_slice);
    let mut held = EpochKeys::new(&space.id, 0, first.clone());
    held.accept(space.epoch, key, link).expect("the chain leads back to the first key");
}

/// An error answer's message, after checking its code.
fn refused<T: std::fmt::Debug>(answer: Result<T, ErrorBody>, code: ErrorCode) -> String {
    let err = answer.expect_err("refused");
    assert_eq!(err.code, code, "{}", err.message);
    err.message
}

#[tokio::test]
async fn an_account_publishes_its_public_key_once() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let ada_key = ada.user_keys().public_key();
    let session: SessionInfo = ada.get_json(&api, "/v1/auth/session").await.unwrap();
    assert_eq!(session.user_public_key, Some(b64::encode(ada_key)));

    // The same key again is fine; another is not; nor is a key of small order, or
    // one of the wrong length (refused before the challenge is taken).
    let path = "/v1/auth/public-key";
    ada.publish_key(&api).await.unwrap();
    let other = UserKeys::derive(&RootSecret::from_bytes(random())).public_key();
    let message = refused(ada.post_empty(&api, path, &publish_key_request(&api, &ada, &other).await).await, Conflict);
    assert!(message.contains("never changes"), "{message}");
    let good = publish_key_request(&api, &ada, &ada_key).await;
    for weak in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        let req = PublishKeyRequest { user_public_key: b64::encode(weak), ..good.clone() };
        refused(ada.post_empty(&api, path, &req).await, InvalidInput);
    }
    let spoiled = [
        PublishKeyRequest { user_public_key: b64::encode([7u8; 31]), ..good.clone() },
        PublishKeyRequest { signature: b64::encode([7u8; 63]), ..good.clone() },
        PublishKeyRequest { signature: "not base64!".into(), ..good.clone() },
        PublishKeyRequest { challenge_id: String::new(), ..good.clone() },
        PublishKeyRequest { challenge_id: "x".repeat(65), ..good.clone() },
    ];
    for req in &spoiled {
        refused(ada.post_empty(&api, path, req).await, InvalidInput);
    }
    Api::expect_error(api.post(path, None, &good).await, Unauthorized);
    ada.post_empty(&api, path, &good).await.expect("its challenge was not taken");
    let session: SessionInfo = ada.get_json(&api, "/v1/auth/session").await.unwrap();
    assert_eq!(session.user_public_key, Some(b64::encode(ada_key)), "unchanged");

    // A sign-up with a key of small order is refused whole.
    let root = RootSecret::from_bytes(random());
    let mut weak = sign_up_request("weak", "pw", &root);
    weak.user_public_key = Some(b64::encode([0u8; 32]));
    Api::expect_error(api.post("/v1/auth/signup", None, &weak).await, InvalidInput);

    // An account from an SDK before public keys has none, until it publishes.
    let bob = sign_up_with(&api, "bob", "pw", false).await;
    let session: SessionInfo = bob.get_json(&api, "/v1/auth/session").await.unwrap();
    assert_eq!(session.user_public_key, None);
    let bob_key = b64::encode(bob.user_keys().public_key());
    bob.publish_key(&api).await.unwrap();
    bob.publish_key(&api).await.unwrap();
    let session: SessionInfo = bob.get_json(&api, "/v1/auth/session").await.unwrap();
    assert_eq!(session.user_public_key.as_deref(), Some(bob_key.as_str()));
    let signed_in = sign_in(&api, "bob", "pw").await.unwrap();
    assert_eq!(signed_in.user_public_key.as_deref(), Some(bob_key.as_str()), "the login answer carries it");
}

#[tokio::test]
async fn publishing_a_key_takes_the_passwords_login_key_not_only_a_session() {
    // Failures enough to be refused for the count instead are not what this tests.
    let server = TestServer::start(|c| c.limits.free_login_failures = 100).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up_with(&api, "bob", "pw", false).await;
    let path = "/v1/auth/public-key";
    let bob_key = bob.user_keys().public_key();
    let bobs_login = password_key(&api, "bob", "pw").await.login_key();
    let adas_login = password_key(&api, "ada", "pw").await.login_key();
    let failed = coffer_accelerator::error::PUBLICATION_FAILED;

    // Each of these, sent with bob's session token, is refused and publishes nothing.
    let used = challenge(&api, "bob").await;
    let mut made_up = publish_key_request_for(&api.url, "bob", &bobs_login, &used, &bob_key);
    made_up.signature = b64::encode(random::<64>());
    let for_ada = challenge(&api, "ada").await;
    let login_signature = {
        let fresh = challenge(&api, "bob").await;
        let bytes = b64::decode(&fresh.challenge).unwrap();
        let signed = account::LoginChallenge {
            origin: &api.url,
            challenge_id: &fresh.challenge_id,
            username: "bob",
            challenge: &bytes,
        };
        PublishKeyRequest {
            signature: b64::encode(bobs_login.sign_challenge(&signed)),
            ..publish_key_request_for(&api.url, "bob", &bobs_login, &fresh, &bob_key)
        }
    };
    let over_another_key = {
        let fresh = challenge(&api, "bob").await;
        let theirs = UserKeys::derive(&RootSecret::from_bytes(random())).public_key();
        PublishKeyRequest {
            user_public_key: b64::encode(bob_key),
            ..publish_key_request_for(&api.url, "bob", &bobs_login, &fresh, &theirs)
        }
    };
    let cases: Vec<(&str, PublishKeyRequest, Option<&str>)> = vec![
        ("a made-up signature", made_up, Some(failed)),
        (
            "a signature by another account's login key",
            publish_key_request_for(&api.url, "bob", &adas_login, &challenge(&api, "bob").await, &bob_key),
            Some(failed),
        ),
        ("a login signature", login_signature, Some(failed)),
        ("a signature over another key", over_another_key, Some(failed)),
        ("a challenge used up", publish_key_request_for(&api.url, "bob", &bobs_login, &used, &bob_key), Some(failed)),
        (
            "a challenge for another username",
            publish_key_request_for(&api.url, "bob", &bobs_login, &for_ada, &bob_key),
            Some(failed),
        ),
        (
            "another origin",
            publish_key_request_for(
                "https://elsewhere.example",
                "bob",
                &bobs_login,
                &challenge(&api, "bob").await,
                &bob_key,
            ),
            None,
        ),
    ];
    for (what, req, message) in &cases {
        let err = bob.post_empty(&api, path, req).await.expect_err(what);
        assert_eq!(err.code, Unauthorized, "{what}: {}", err.message);
        if let Some(message) = message {
            assert_eq!(err.message, *message, "{what}");
        } else {
            assert!(err.message.contains("this accelerator answers at"), "{what}: {}", err.message);
        }
        let session: SessionInfo = bob.get_json(&api, "/v1/auth/session").await.unwrap();
        assert_eq!(session.user_public_key, None, "{what}: nothing published");
    }
    // Ada's own token cannot publish for bob either: the challenge must be for the
    // session's username.
    let for_bob = publish_key_request_for(&api.url, "bob", &bobs_login, &challenge(&api, "bob").await, &bob_key);
    assert_eq!(refused(ada.post_empty(&api, path, &for_bob).await, Unauthorized), failed);

    // Signed with his password's login key, it publishes.
    bob.publish_key(&api).await.expect("published");
    let session: SessionInfo = bob.get_json(&api, "/v1/auth/session").await.unwrap();
    assert_eq!(session.user_public_key, Some(b64::encode(bob_key)));
}

#[tokio::test]
async fn failed_publications_slow_down_like_failed_logins() {
    let server = TestServer::start(|c| {
        c.limits.free_login_failures = 2;
        c.limits.login_backoff_base = Duration::from_millis(500);
        c.limits.login_backoff_max = Duration::from_millis(500);
    })
    .await;
    let api = server.api();
    let bob = sign_up_with(&api, "bob", "pw", false).await;
    let bob_key = bob.user_keys().public_key();
    let guess = || async {
        let thiefs = account::PasswordKey::from_bytes(random()).login_key();
        let fresh: ChallengeResponse =
            api.call("/v1/auth/challenge", None, &ChallengeRequest { username: "bob".into() }).await?;
        let req = publish_key_request_for(&api.url, "bob", &thiefs, &fresh, &bob_key);
        bob.post_empty(&api, "/v1/auth/public-key", &req).await
    };
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(guess().await.unwrap_err().code);
    }
    assert_eq!(&outcomes[..3], [Unauthorized; 3], "the first failures cost nothing");
    assert!(outcomes[3..].iter().all(|c| *c == RateLimited), "{outcomes:?}");
    // The count is the username's: logins wait too.
    assert_eq!(sign_in(&api, "bob", "pw").await.unwrap_err().code, RateLimited);
    // After the wait the owner publishes; that clears the count.
    tokio::time::sleep(Duration::from_millis(600)).await;
    bob.publish_key(&api).await.expect("published");
    assert_eq!(guess().await.unwrap_err().code, Unauthorized);
}

#[tokio::test]
async fn a_roster_entry_needs_a_published_key_and_a_well_formed_mac() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let old = sign_up_with(&api, "old", "pw", false).await;

    // Creating without a published key.
    let id = new_id();
    let key = SpaceKey::from_bytes(random());
    let req =
        CreateSpaceRequest { space_id: id.clone(), sealed_name: sealed(40), roster_mac: old.roster_mac(&id, &key) };
    let message = refused(api.call::<SpaceInfo>("/v1/spaces", Some(old.token()), &req).await, Conflict);
    assert!(message.contains("/v1/auth/public-key"), "{message}");
    // A MAC of the wrong length.
    let short = CreateSpaceRequest { roster_mac: b64::encode([1u8; 31]), ..req.clone() };
    refused(api.call::<SpaceInfo>("/v1/spaces", Some(ada.token()), &short).await, InvalidInput);
    let list: SpaceListResponse = ada.get_json(&api, "/v1/spaces").await.unwrap();
    assert!(list.spaces.is_empty(), "nothing was created");

    // Joining without one, and with a bad MAC: the invite stays unused.
    let space = ada.create_space(&api).await;
    let token = ada.invite(&api, &space, Role::Writer, None, None).await.unwrap();
    refused(old.join(&api, &token_text(&token)).await, Conflict);
    let bad = JoinSpaceRequest {
        space_id: space.id.clone(),
        secret: b64::encode(token.secret.as_bytes()),
        roster_mac: "not base64!".into(),
    };
    refused(api.call::<SpaceInfo>("/v1/spaces/join", Some(old.token()), &bad).await, InvalidInput);
    // Once published, the same invite admits.
    old.publish_key(&api).await.unwrap();
    let joined = old.join(&api, &token_text(&token)).await.unwrap();
    assert_eq!((joined.role, joined.epoch, joined.in_roster), (Role::Writer, 0, true));
}

#[tokio::test]
async fn members_carry_their_public_keys_and_roster_entries() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let space = ada.create_space(&api).await;
    let token = ada.invite(&api, &space, Role::Reader, None, None).await.unwrap();
    let joined = bob.join(&api, &token_text(&token)).await.unwrap();
    assert_eq!((joined.epoch, joined.rotation_due, joined.in_roster), (0, false, true));

    let listed = members(&bob, &api, &space).await;
    for (m, who) in listed.iter().zip([&ada, &bob]) {
        assert_eq!(m.user_id, who.user_id());
        assert_eq!(m.public_key.as_deref(), Some(b64::encode(who.user_keys().public_key()).as_str()));
        assert_eq!(m.roster_mac.as_deref(), Some(who.roster_mac(&space.id, &space.key).as_str()));
        let (key, mac) = (m.public_key.as_deref().unwrap(), m.roster_mac.as_deref().unwrap());
        epoch::check_roster_entry(&space.key, &space.id, &m.user_id, key, mac).expect("an honest entry checks");
    }
    assert!(info(&bob, &api, &space).await.in_roster);

    // Joining again with the invite (now used up) replaces the entry, nothing else.
    let again = JoinSpaceRequest {
        space_id: space.id.clone(),
        secret: b64::encode(token.secret.as_bytes()),
        roster_mac: b64::encode([5u8; 32]),
    };
    let rejoined: SpaceInfo = api.call("/v1/spaces/join", Some(bob.token()), &again).await.unwrap();
    assert_eq!(rejoined.role, Role::Reader);
    let listed = members(&ada, &api, &space).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].roster_mac.as_deref(), Some(b64::encode([5u8; 32]).as_str()));
    bob.join(&api, &token_text(&token)).await.unwrap();
    assert_eq!(members(&ada, &api, &space).await[1].roster_mac, Some(bob.roster_mac(&space.id, &space.key)));
}

#[tokio::test]
async fn removing_a_member_stops_invites_and_commits_until_the_key_is_rotated() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let cy = sign_up(&api, "cy", "pw").await;
    let dee = sign_up(&api, "dee", "pw").await;
    let space = ada.create_space(&api).await;
    let writers = token_text(&ada.invite(&api, &space, Role::Writer, None, Some(5)).await.unwrap());
    bob.join(&api, &writers).await.unwrap();
    cy.join(&api, &writers).await.unwrap();
    let spare = token_text(&ada.invite(&api, &space, Role::Reader, None, None).await.unwrap());
    let shards = shards_of(b"a chunk written before");
    bob.upload(&api, &shards).await;
    assert_eq!(bob.commit(&api, &space, &addresses(&shards[..2])).await.unwrap().epoch, 0);

    let remove = RemoveMemberRequest { user_id: cy.user_id().into() };
    ada.post_empty(&api, &space.path("/members/remove"), &remove).await.unwrap();
    let due = info(&ada, &api, &space).await;
    assert_eq!((due.epoch, due.rotation_due), (0, true));
    assert!(keys(&bob, &api, &space, None).await.unwrap().rotation_due);
    // Every invite went with the member: the spare one, and the one cy joined with.
    assert_eq!(refused(dee.join(&api, &spare).await, Forbidden), refused(dee.join(&api, &writers).await, Forbidden));
    let message = refused(bob.commit(&api, &space, &addresses(&shards[2..])).await, Conflict);
    assert!(message.contains("rotated"), "{message}");
    let message = refused(ada.invite(&api, &space, Role::Reader, None, None).await, Conflict);
    assert!(message.contains("rotated"), "{message}");

    // A writer rotates; cy, removed, is not in the roster it checks.
    let (req, key) = rotation(&bob, &api, &space).await;
    let ids: Vec<&str> = req.members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(ids, [ada.user_id(), bob.user_id()]);
    let rotated = rotate(&bob, &api, &space, &req).await.unwrap();
    assert_eq!((rotated.epoch, rotated.rotation_due, rotated.in_roster), (1, false, true));
    let first = space.key.clone();
    let space1 = next(&space, key);

    // Only the new epoch may be written now: commits and invites.
    let message = refused(bob.commit(&api, &space, &addresses(&shards[2..])).await, Conflict);
    assert!(message.contains("epoch 1"), "{message}");
    let file = bob.commit(&api, &space1, &addresses(&shards[2..])).await.unwrap();
    assert_eq!(file.epoch, 1);
    let epochs: Vec<u32> = ada.files(&api, &space1).await.unwrap().iter().map(|f| f.epoch).collect();
    assert_eq!(epochs, [0, 1], "each file keeps the epoch it was sealed under");
    let got: FileEntry = ada.get_json(&api, &space1.path(&format!("/files/{}", file.file_id))).await.unwrap();
    assert_eq!(got.epoch, 1);
    refused(ada.invite(&api, &space, Role::Reader, None, None).await, Conflict);
    let fresh = ada.invite(&api, &space1, Role::Reader, None, None).await.unwrap();
    let joined = dee.join(&api, &token_text(&fresh)).await.unwrap();
    assert_eq!((joined.epoch, joined.in_roster), (1, true));
    // Dee came in with the token's key: none is sealed to her, and the link leads to
    // the key of what was written before.
    let dees = keys(&dee, &api, &space1, None).await.unwrap();
    assert_eq!((dees.epoch, dees.in_roster, dees.sealed_key.as_deref()), (1, true, None));
    let link = b64::decode(&dees.links[0].sealed_previous).unwrap();
    let mut held = EpochKeys::new(&space.id, 1, space1.key.clone());
    held.descend(0, |e| (e == 1).then_some(link.as_slice())).unwrap();
    assert_eq!(held.get(0), Some(&first));
    for who in [&ada, &bob] {
        holds_current_key(who, &api, &space1, &first).await;
    }
    // Cy is out: no keys for her.
    refused(keys(&cy, &api, &space1, None).await, Forbidden);
}

#[tokio::test]
async fn leaving_makes_a_rotation_due_too() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let cy = sign_up(&api, "cy", "pw").await;
    let space = ada.create_space(&api).await;
    let invite = token_text(&ada.invite(&api, &space, Role::Writer, None, Some(3)).await.unwrap());
    bob.join(&api, &invite).await.unwrap();
    bob.post_empty(&api, &space.path("/leave"), &json!({})).await.unwrap();
    let due = info(&ada, &api, &space).await;
    assert!(due.rotation_due);
    refused(cy.join(&api, &invite).await, Forbidden);
    let shards = shards_of(b"chunk");
    ada.upload(&api, &shards).await;
    refused(ada.commit(&api, &space, &addresses(&shards)).await, Conflict);

    let (req, key) = rotation(&ada, &api, &space).await;
    assert_eq!(req.members.len(), 1, "only ada is left");
    rotate(&ada, &api, &space, &req).await.unwrap();
    let space1 = next(&space, key);
    assert!(!info(&ada, &api, &space1).await.rotation_due);
    assert_eq!(ada.commit(&api, &space1, &addresses(&shards)).await.unwrap().epoch, 1);
    holds_current_key(&ada, &api, &space1, &space.key).await;
}

#[tokio::test]
async fn a_rotation_is_checked_whole_and_a_refused_one_changes_nothing() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let cy = sign_up(&api, "cy", "pw").await;
    let dee = sign_up(&api, "dee", "pw").await;
    let eve = sign_up(&api, "eve", "pw").await;
    let space = ada.create_space(&api).await;
    bob.join(&api, &token_text(&ada.invite(&api, &space, Role::Writer, None, None).await.unwrap())).await.unwrap();
    let readers = token_text(&ada.invite(&api, &space, Role::Reader, None, Some(2)).await.unwrap());
    cy.join(&api, &readers).await.unwrap();
    dee.join(&api, &readers).await.unwrap();
    // Dee leaves: a rotation is due, and her invite went with her.
    dee.post_empty(&api, &space.path("/leave"), &json!({})).await.unwrap();
    let name_before = info(&ada, &api, &space).await.sealed_name;
    let members_before = members(&ada, &api, &space).await;

    // A writer rotates; here is a good rotation, and ways to spoil it.
    let (good, key) = rotation(&bob, &api, &space).await;
    let spoiled = |change: &dyn Fn(&mut RotateRequest)| {
        let mut req = good.clone();
        change(&mut req);
        req
    };
    let eve_share = RotatedMember {
        user_id: eve.user_id().into(),
        sealed_key: b64::encode(
            epoch::seal_epoch_key(&eve.user_keys().public_key(), &space.id, 1, eve.user_id(), &key, random()).unwrap(),
        ),
        roster_mac: eve.roster_mac(&space.id, &key),
    };
    let cases: Vec<(&str, RotateRequest, ErrorCode)> = vec![
        ("an epoch skipped", spoiled(&|r| r.epoch = 2), Conflict),
        ("the current epoch", spoiled(&|r| r.epoch = 0), Conflict),
        ("a member missing", spoiled(&|r| drop(r.members.remove(2))), Conflict),
        ("an outsider added", spoiled(&|r| r.members.push(eve_share.clone())), Conflict),
        ("an outsider instead of a member", spoiled(&|r| r.members[1] = eve_share.clone()), Conflict),
        ("no members", spoiled(&|r| r.members.clear()), Conflict),
        ("a member twice", spoiled(&|r| r.members.push(r.members[0].clone())), InvalidInput),
        ("a short link", spoiled(&|r| r.sealed_previous = b64::encode([1u8; 60])), InvalidInput),
        ("a long link", spoiled(&|r| r.sealed_previous = b64::encode([1u8; 62])), InvalidInput),
        ("a short sealed key", spoiled(&|r| r.members[0].sealed_key = b64::encode([1u8; 80])), InvalidInput),
        ("a short roster MAC", spoiled(&|r| r.members[0].roster_mac = b64::encode([1u8; 31])), InvalidInput),
        ("a user id that is none", spoiled(&|r| r.members[0].user_id = "not an id".into()), InvalidInput),
        ("no name", spoiled(&|r| r.sealed_name = String::new()), InvalidInput),
        ("a name too long", spoiled(&|r| r.sealed_name = sealed(1025)), TooLarge),
        ("an epoch past the last", spoiled(&|r| r.epoch = MAX_EPOCH + 1), TooLarge),
    ];
    for (what, req, code) in &cases {
        let err = rotate(&bob, &api, &space, req).await.expect_err(what);
        assert_eq!(err.code, *code, "{what}: {}", err.message);
    }
    let message = refused(rotate(&bob, &api, &space, &cases[0].1).await, Conflict);
    assert!(message.contains("another member may have rotated first"), "{message}");
    let message = refused(rotate(&bob, &api, &space, &cases[2].1).await, Conflict);
    assert!(message.contains("members changed"), "{message}");
    // A reader may not rotate, even a good rotation of their own.
    let message = refused(rotate(&cy, &api, &space, &good).await, Forbidden);
    assert!(message.contains("only writers and owners"), "{message}");
    let (by_reader, _) = rotation(&cy, &api, &space).await;
    refused(rotate(&cy, &api, &space, &by_reader).await, Forbidden);
    // An outsider, even with a good rotation, learns nothing.
    refused(rotate(&eve, &api, &space, &good).await, Forbidden);
    let nowhere = TestSpace { id: new_id(), key: space.key.clone(), epoch: 0 };
    refused(rotate(&ada, &api, &nowhere, &good).await, Forbidden);
    Api::expect_error(api.post(&space.path("/rotate"), None, &good).await, Unauthorized);

    // Nothing changed.
    let unchanged = keys(&ada, &api, &space, None).await.unwrap();
    assert_eq!((unchanged.epoch, unchanged.rotation_due, unchanged.sealed_key), (0, true, None));
    assert!(unchanged.links.is_empty());
    assert_eq!(unchanged.sealed_name, name_before);
    assert_eq!(info(&ada, &api, &space).await.sealed_name, name_before);
    assert_eq!(members(&ada, &api, &space).await, members_before);

    // The good one.
    let rotated = rotate(&bob, &api, &space, &good).await.unwrap();
    assert_eq!((rotated.epoch, rotated.rotation_due, rotated.in_roster, rotated.role), (1, false, true, Role::Writer));
    assert_eq!(rotated.sealed_name, good.sealed_name);
    let name = b64::decode(&rotated.sealed_name).unwrap();
    assert_eq!(space::open_space_name(&key, &space.id, &name).unwrap(), "Team", "the name under the new key");
    let space1 = next(&space, key);
    for who in [&ada, &bob, &cy] {
        holds_current_key(who, &api, &space1, &space.key).await;
        assert_eq!(info(who, &api, &space1).await.sealed_name, good.sealed_name);
    }
    for m in members(&bob, &api, &space1).await {
        let (public, mac) = (m.public_key.unwrap(), m.roster_mac.unwrap());
        epoch::check_roster_entry(&space1.key, &space.id, &m.user_id, &public, &mac)
            .expect("entries under the new key");
    }
    let answer = keys(&bob, &api, &space1, Some(0)).await.unwrap();
    assert_eq!(answer.links.len(), 1);
    assert_eq!((answer.links[0].epoch, answer.links[0].sealed_previous.as_str()), (1, good.sealed_previous.as_str()));
    assert_eq!(answer.sealed_name, good.sealed_name);
    assert!(keys(&bob, &api, &space1, Some(1)).await.unwrap().links.is_empty(), "none after the current epoch");
    Api::expect_error(api.get(&space.path("/keys?after=x"), Some(bob.token())).await, InvalidInput);
    refused(keys(&eve, &api, &space1, None).await, Forbidden);
    // The same rotation again is a rotation to an epoch that is taken.
    let message = refused(rotate(&bob, &api, &space1, &good).await, Conflict);
    assert!(message.contains("another member may have rotated first"), "{message}");
    // The invite from before went with dee.
    refused(eve.join(&api, &readers).await, Forbidden);
}

#[tokio::test]
async fn only_writers_and_owners_rotate_and_only_while_a_rotation_is_due() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let cy = sign_up(&api, "cy", "pw").await;
    let dee = sign_up(&api, "dee", "pw").await;
    let space = ada.create_space(&api).await;
    bob.join(&api, &token_text(&ada.invite(&api, &space, Role::Writer, None, None).await.unwrap())).await.unwrap();
    let readers = token_text(&ada.invite(&api, &space, Role::Reader, None, Some(2)).await.unwrap());
    cy.join(&api, &readers).await.unwrap();
    dee.join(&api, &readers).await.unwrap();

    // None is due: neither the owner nor a writer may rotate, with rotations of
    // their own that are good in every other way; a reader never may.
    for who in [&ada, &bob] {
        let (req, _) = rotation(who, &api, &space).await;
        let message = refused(rotate(who, &api, &space, &req).await, Conflict);
        assert!(message.contains("no rotation is due"), "{}: {message}", who.username);
        assert!(message.contains("leaves or is removed"), "{message}");
    }
    let (by_reader, _) = rotation(&cy, &api, &space).await;
    let message = refused(rotate(&cy, &api, &space, &by_reader).await, Forbidden);
    assert!(message.contains("only writers and owners"), "{message}");
    let answer = keys(&cy, &api, &space, None).await.unwrap();
    assert_eq!((answer.epoch, answer.rotation_due, answer.in_roster, answer.links.len()), (0, false, true, 0));

    // Dee leaves: one is due. Still not by a reader; by a writer, yes.
    dee.post_empty(&api, &space.path("/leave"), &json!({})).await.unwrap();
    assert!(keys(&cy, &api, &space, None).await.unwrap().rotation_due);
    let (by_reader, _) = rotation(&cy, &api, &space).await;
    refused(rotate(&cy, &api, &space, &by_reader).await, Forbidden);
    let (req, key) = rotation(&bob, &api, &space).await;
    let rotated = rotate(&bob, &api, &space, &req).await.unwrap();
    assert_eq!((rotated.epoch, rotated.rotation_due, rotated.role), (1, false, Role::Writer));
    let space1 = next(&space, key);
    for who in [&ada, &bob, &cy] {
        holds_current_key(who, &api, &space1, &space.key).await;
    }

    // Done: a second rotation, to the next epoch, is not due any more.
    let (again, _) = rotation(&ada, &api, &space1).await;
    assert_eq!(again.epoch, 2);
    let message = refused(rotate(&ada, &api, &space1, &again).await, Conflict);
    assert!(message.contains("no rotation is due"), "{message}");
    let answer = keys(&ada, &api, &space1, None).await.unwrap();
    assert_eq!((answer.epoch, answer.rotation_due, answer.links.len()), (1, false, 1));
}

#[tokio::test]
async fn of_two_rotations_to_one_epoch_one_wins() {
    let server = TestServer::start(|_| {}).await;
    // On PostgreSQL, the second rotator talks to another accelerator on the same data.
    let beside = if remote_backend() { Some(server.another(|_| {}).await) } else { None };
    let api = server.api();
    let other_api = beside.as_ref().map_or_else(|| server.api(), TestServer::api);
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let cy = sign_up(&api, "cy", "pw").await;
    let first = ada.create_space(&api).await;
    bob.join(&api, &token_text(&ada.invite(&api, &first, Role::Writer, None, None).await.unwrap())).await.unwrap();
    let mut space = TestSpace { id: first.id.clone(), key: first.key.clone(), epoch: 0 };
    for round in 1..=4u32 {
        // Each round's rotation is due: cy came and went.
        cy.join(&api, &token_text(&ada.invite(&api, &space, Role::Reader, None, None).await.unwrap())).await.unwrap();
        cy.post_empty(&api, &space.path("/leave"), &json!({})).await.unwrap();
        let (a_req, a_key) = rotation(&ada, &api, &space).await;
        let (b_req, b_key) = rotation(&bob, &other_api, &space).await;
        let (a, b) = tokio::join!(rotate(&ada, &api, &space, &a_req), rotate(&bob, &other_api, &space, &b_req));
        let key = match (a, b) {
            (Ok(won), Err(lost)) => {
                assert_eq!(lost.code, Conflict, "{}", lost.message);
                assert_eq!(won.epoch, round);
                a_key
            }
            (Err(lost), Ok(won)) => {
                assert_eq!(lost.code, Conflict, "{}", lost.message);
                assert_eq!(won.epoch, round);
                b_key
            }
            other => panic!("exactly one rotation wins: {other:?}"),
        };
        space = next(&space, key);
        let answer = keys(&bob, &other_api, &space, None).await.unwrap();
        assert_eq!((answer.epoch, answer.rotation_due, answer.links.len()), (round, false, round as usize));
        for who in [&ada, &bob] {
            holds_current_key(who, &api, &space, &first.key).await;
        }
    }
}

#[tokio::test]
async fn the_roster_route_enters_the_caller_at_the_current_epoch() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let eve = sign_up(&api, "eve", "pw").await;
    let space = ada.create_space(&api).await;
    bob.join(&api, &token_text(&ada.invite(&api, &space, Role::Reader, None, None).await.unwrap())).await.unwrap();
    let path = space.path("/roster");
    let entry = |epoch: u32, mac: String| RosterEntryRequest { epoch, roster_mac: mac };

    bob.post_empty(&api, &path, &entry(0, b64::encode([6u8; 32]))).await.unwrap();
    assert_eq!(members(&ada, &api, &space).await[1].roster_mac, Some(b64::encode([6u8; 32])));
    let message =
        refused(bob.post_empty(&api, &path, &entry(1, bob.roster_mac(&space.id, &space.key))).await, Conflict);
    assert!(message.contains("epoch 0"), "{message}");
    refused(bob.post_empty(&api, &path, &entry(0, b64::encode([6u8; 33]))).await, InvalidInput);
    refused(eve.post_empty(&api, &path, &entry(0, eve.roster_mac(&space.id, &space.key))).await, Forbidden);
    let nowhere = TestSpace { id: new_id(), key: space.key.clone(), epoch: 0 };
    refused(bob.post_empty(&api, &nowhere.path("/roster"), &entry(0, b64::encode([6u8; 32]))).await, Forbidden);
    bob.post_empty(&api, &path, &entry(0, bob.roster_mac(&space.id, &space.key))).await.unwrap();
    let listed = members(&ada, &api, &space).await;
    assert_eq!(listed[1].roster_mac, Some(bob.roster_mac(&space.id, &space.key)));
    assert_eq!(listed.iter().filter(|m| m.user_id == eve.user_id()).count(), 0, "no entry for an outsider");
}

#[tokio::test]
async fn a_rotation_body_may_be_large_but_not_past_its_limit() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let space = ada.create_space(&api).await;
    bob.join(&api, &token_text(&ada.invite(&api, &space, Role::Reader, None, None).await.unwrap())).await.unwrap();
    bob.post_empty(&api, &space.path("/leave"), &json!({})).await.unwrap();
    let (mut req, _) = rotation(&ada, &api, &space).await;
    // Some 8000 members' shares: past the JSON routes' 1 MiB, within this route's.
    let share = |_| RotatedMember {
        user_id: new_id(),
        sealed_key: b64::encode([1u8; epoch::SEALED_EPOCH_KEY_LEN]),
        roster_mac: b64::encode([2u8; 32]),
    };
    req.members.extend((0..8000).map(share));
    assert!(serde_json::to_vec(&req).unwrap().len() > 1024 * 1024);
    let message = refused(rotate(&ada, &api, &space, &req).await, Conflict);
    assert!(message.contains("members changed"), "read whole and refused by the roster: {message}");
    // Past the limit: refused before it is read.
    let huge = vec![b' '; coffer_accelerator::routes::space_keys::MAX_ROTATE_BODY_BYTES + 1];
    let answer = api.post_raw(&space.path("/rotate"), Some(ada.token()), "application/json", huge).await;
    Api::expect_error(answer, TooLarge);
    assert_eq!(keys(&ada, &api, &space, None).await.unwrap().epoch, 0);
    assert!(api.healthy().await);
}

/// The schema before key epochs, and rows in it as an accelerator of that version
/// left them: a space of three members (accounts without public keys) and a file.
mod before_epochs {
    use super::*;
    use common::old_schema::{blob, user_insert};

    /// What the old rows hold that the test needs.
    pub struct Old {
        /// The space, with its key (epoch 0).
        pub space: TestSpace,
        /// Its file.
        pub file_id: String,
        /// Ada (owner), bob (writer) and cy (reader): name and root secret; each
        /// signs in with the password "pw".
        pub users: Vec<(String, RootSecret)>,
    }

    /// The INSERTs of the old rows, in the backend's SQL.
    pub fn rows(postgres: bool) -> (String, Old) {
        let space = TestSpace { id: new_id(), key: SpaceKey::from_bytes(random()), epoch: 0 };
        let sealed_name = space::seal_space_name(&space.key, &space.id, "From before", random()).unwrap();
        let ids: Vec<String> = (0..3).map(|_| new_id()).collect();
        let mut sql = format!(
            "INSERT INTO spaces (space_id, sealed_name, created_at_ms, created_by, charged_bytes)
             VALUES ('{}', {}, 1, '{}', 0);\n",
            space.id,
            blob(&sealed_name, postgres),
            ids[0]
        );
        let mut users = Vec::new();
        for ((name, role), id) in [("ada", "owner"), ("bob", "writer"), ("cy", "reader")].into_iter().zip(&ids) {
            let root = RootSecret::from_bytes(random());
            sql += &user_insert(id, name, &root, (0, 0), postgres);
            sql += &format!(
                "INSERT INTO members (space_id, user_id, role, joined_at_ms) VALUES ('{}', '{id}', '{role}', 2);\n",
                space.id,
            );
            users.push((name.to_owned(), root));
        }
        let file_id = new_id();
        sql += &format!(
            "INSERT INTO shards (address, size, stored_at_ms) VALUES ({a}, 1000, 3);
             INSERT INTO files (space_id, file_id, sealed_record, stored_bytes, created_by, created_at_ms, shard_count)
             VALUES ('{s}', '{file_id}', {r}, 1000, '{bob}', 3, 1);
             INSERT INTO file_shards (space_id, file_id, address) VALUES ('{s}', '{file_id}', {a});",
            a = blob(&[9u8; 32], postgres),
            s = space.id,
            r = blob(&[4u8; 60], postgres),
            bob = ids[1],
        );
        (sql, Old { space, file_id, users })
    }
}

#[tokio::test]
async fn a_space_from_before_epochs_opens_at_epoch_0_without_roster_entries() {
    let (sql, old) = before_epochs::rows(remote_backend());
    let server = common::old_schema::server(5, 3, &sql).await;
    let api = server.api();
    let mut accounts = Vec::new();
    for (name, root) in old.users {
        let session = sign_in(&api, &name, "pw").await.expect("an old account signs in");
        assert_eq!(session.user_public_key, None);
        accounts.push(Account { username: name, password: "pw".into(), session, keys: KvKeys::derive(&root), root });
    }
    let [ada, bob, cy] = &accounts[..] else { unreachable!() };
    let space = &old.space;

    // Epoch 0, nobody in the roster, no keys, the file at epoch 0.
    let seen = info(ada, &api, space).await;
    assert_eq!((seen.epoch, seen.rotation_due, seen.in_roster), (0, false, false));
    let name = b64::decode(&seen.sealed_name).unwrap();
    assert_eq!(space::open_space_name(&space.key, &space.id, &name).unwrap(), "From before");
    let listed = members(bob, &api, space).await;
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|m| m.public_key.is_none() && m.roster_mac.is_none()), "{listed:?}");
    let files = bob.files(&api, space).await.unwrap();
    assert_eq!((files.len(), files[0].file_id.as_str(), files[0].epoch), (1, old.file_id.as_str(), 0));
    let answer = keys(cy, &api, space, None).await.unwrap();
    assert_eq!((answer.epoch, answer.rotation_due, answer.in_roster), (0, false, false));
    assert_eq!((answer.sealed_key, answer.links.len()), (None, 0));

    // No rotation is due, and without a published key no one may enter the roster.
    let (nobody, _) = rotation(ada, &api, space).await;
    assert!(nobody.members.is_empty());
    let message = refused(rotate(ada, &api, space, &nobody).await, Conflict);
    assert!(message.contains("no rotation is due"), "{message}");
    let entry = RosterEntryRequest { epoch: 0, roster_mac: ada.roster_mac(&space.id, &space.key) };
    let message = refused(ada.post_empty(&api, &space.path("/roster"), &entry).await, Conflict);
    assert!(message.contains("/v1/auth/public-key"), "{message}");

    // Cy is removed: a rotation is due, but without an entry no one may rotate. Ada
    // publishes her key and enters the roster all the same (a space from before
    // could never rotate otherwise), then rotates; bob, who never entered, is left
    // out of the new epoch.
    let remove = RemoveMemberRequest { user_id: cy.user_id().into() };
    ada.post_empty(&api, &space.path("/members/remove"), &remove).await.unwrap();
    let message = refused(rotate(ada, &api, space, &nobody).await, Conflict);
    assert!(message.contains("enter the roster first"), "{message}");
    ada.publish_key(&api).await.unwrap();
    ada.post_empty(&api, &space.path("/roster"), &entry).await.unwrap();
    let entered = info(ada, &api, space).await;
    assert_eq!((entered.in_roster, entered.rotation_due), (true, true));
    let adas = keys(ada, &api, space, None).await.unwrap();
    assert_eq!((adas.in_roster, adas.rotation_due), (true, true));
    assert!(!keys(bob, &api, space, None).await.unwrap().in_roster);
    let (by_bob, _) = rotation(bob, &api, space).await;
    let message = refused(rotate(bob, &api, space, &by_bob).await, Conflict);
    assert!(message.contains("enter the roster first"), "{message}");
    let (req, key) = rotation(ada, &api, space).await;
    let ids: Vec<&str> = req.members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(ids, [ada.user_id()]);
    rotate(ada, &api, space, &req).await.unwrap();
    let space1 = next(space, key);
    holds_current_key(ada, &api, &space1, &space.key).await;
    let bobs = keys(bob, &api, &space1, None).await.unwrap();
    assert_eq!((bobs.epoch, bobs.rotation_due, bobs.in_roster), (1, false, false));
    assert_eq!(bobs.sealed_key, None, "no key sealed to bob");
    assert!(!info(bob, &api, &space1).await.in_roster);
    let listed = members(ada, &api, &space1).await;
    assert_eq!(listed[1].roster_mac, None);
    assert_eq!(bob.files(&api, &space1).await.unwrap()[0].epoch, 0, "the old file stays at epoch 0");
}
