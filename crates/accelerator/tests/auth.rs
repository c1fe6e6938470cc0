//! Sign-up, sign-in, sessions and password changes over real HTTP.

mod common;

use std::time::Duration;

use coffer_core::ErrorCode;
use coffer_core::account::{self, KdfParams, RootSecret};
use coffer_core::b64;
use coffer_core::proto::*;
use common::*;

const SIGN_IN_FAILED: &str = coffer_accelerator::error::SIGN_IN_FAILED;

#[tokio::test]
async fn sign_up_then_sign_in_on_another_device_unwraps_the_same_root() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "correct horse").await;
    ada.set(&api, "todos", "t1", r#"{"title":"Ship docs"}"#, true).await;

    let session = sign_in(&api, "ada", "correct horse").await.expect("sign in");
    assert_eq!(session.user_id, ada.user_id());
    assert_eq!(session.kv_seq, 1, "the session says where the kv log is");
    assert_ne!(session.token, ada.token());

    // The new device derives the wrap key and unwraps the same root secret.
    let salt: SaltResponse = api.call("/v1/auth/salt", None, &SaltRequest { username: "ada".into() }).await.unwrap();
    let pwk =
        account::derive_password_key("correct horse", &b64::decode_array(&salt.salt).unwrap(), &salt.kdf).unwrap();
    let wrapped = b64::decode(&session.wrapped_root).unwrap();
    let root = pwk.wrap_key().unwrap("ada", &wrapped).expect("unwraps");
    assert_eq!(root.as_bytes(), ada.root.as_bytes());

    let info: SessionInfo = serde_json::from_value(api.get("/v1/auth/session", Some(&session.token)).await.1).unwrap();
    assert_eq!(info.username, "ada");
    assert_eq!(info.kv_seq, 1);
    assert_eq!(info.expires_at_ms, session.expires_at_ms);
}

#[tokio::test]
async fn taken_username_is_a_conflict() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    sign_up(&api, "ada", "pw-one").await;
    let root = RootSecret::from_bytes(random());
    let again = api.post("/v1/auth/signup", None, &sign_up_request("ada", "pw-two", &root)).await;
    Api::expect_error(again, ErrorCode::Conflict);
}

#[tokio::test]
async fn unknown_username_salt_looks_like_a_known_one() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;

    let salt = |name: &'static str| {
        let api = api.clone();
        async move {
            let (status, body) = api.post("/v1/auth/salt", None, &SaltRequest { username: name.into() }).await;
            assert_eq!(status, 200);
            body
        }
    };
    let known = salt("ada").await;
    let unknown = salt("nobody").await;
    // Same shape: the same fields, a 16-byte salt.
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&known), keys(&unknown));
    assert_eq!(keys(&known["kdf"]), keys(&unknown["kdf"]));
    let parsed: SaltResponse = serde_json::from_value(unknown.clone()).unwrap();
    assert_eq!(b64::decode(&parsed.salt).unwrap().len(), 16);
    assert_eq!(parsed.kdf, KdfParams::default());
    // Stable across calls, different per name.
    assert_eq!(salt("nobody").await, unknown);
    assert_ne!(salt("somebody-else").await["salt"], unknown["salt"]);

    // Stable across a restart: the server secret is kept in the records.
    let server = server.restart(|_| {}).await;
    let api = server.api();
    let (_, after) = api.post("/v1/auth/salt", None, &SaltRequest { username: "nobody".into() }).await;
    assert_eq!(after, unknown);
    // And the account survived the restart too.
    sign_in(&api, "ada", "pw").await.expect("sign in after restart");
}

/// Embedded accelerators once kept the server secret in the file
/// `DATA_DIR/server-secret`; the first start since keeps that secret, so unknown
/// names' made-up salts do not change under an upgrade.
#[tokio::test]
async fn a_secret_an_earlier_version_kept_in_a_file_is_kept() {
    use hmac::{Hmac, KeyInit, Mac};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(coffer_accelerator::secret::SECRET_FILE), [7u8; 32]).unwrap();
    let server = TestServer::start_in(dir, |_| {}).await;
    let (_, body) = server.api().post("/v1/auth/salt", None, &SaltRequest { username: "nobody".into() }).await;
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[7u8; 32]).unwrap();
    mac.update(b"nobody");
    let salt: SaltResponse = serde_json::from_value(body).unwrap();
    assert_eq!(b64::decode(&salt.salt).unwrap(), mac.finalize().into_bytes()[..16]);
}

#[tokio::test]
async fn unknown_user_gets_a_challenge_and_fails_like_a_wrong_password() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;
    let unknown = sign_in(&api, "nobody", "pw").await.unwrap_err();
    let wrong = sign_in(&api, "ada", "not the password").await.unwrap_err();
    assert_eq!(unknown, wrong);
    assert_eq!(unknown.code, ErrorCode::Unauthorized);
    assert_eq!(unknown.message, SIGN_IN_FAILED);
}

#[tokio::test]
async fn forged_signature_is_refused() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;
    let ch = challenge(&api, "ada").await;
    // A random Ed25519 key signs the right message.
    let forger = account::PasswordKey::from_bytes(random()).login_key();
    let bytes = b64::decode(&ch.challenge).unwrap();
    let signed = account::LoginChallenge {
        origin: &api.url,
        challenge_id: &ch.challenge_id,
        username: "ada",
        challenge: &bytes,
    };
    let sig = forger.sign_challenge(&signed);
    let login = LoginRequest { origin: api.url.clone(), challenge_id: ch.challenge_id, signature: b64::encode(sig) };
    let err = api.call::<SessionResponse>("/v1/auth/login", None, &login).await.unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (ErrorCode::Unauthorized, SIGN_IN_FAILED));
    // A well-formed but arbitrary signature, and a signature for another user's name.
    let ch = challenge(&api, "ada").await;
    let login =
        LoginRequest { origin: api.url.clone(), challenge_id: ch.challenge_id, signature: b64::encode([7u8; 64]) };
    assert_eq!(api.call::<SessionResponse>("/v1/auth/login", None, &login).await.unwrap_err().message, SIGN_IN_FAILED);
}

#[tokio::test]
async fn a_challenge_is_single_use() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;

    // Replaying a successful login fails.
    let ch = challenge(&api, "ada").await;
    let login = sign_challenge(&api, "ada", "pw", &ch).await;
    api.call::<SessionResponse>("/v1/auth/login", None, &login).await.expect("first use");
    let replay = api.call::<SessionResponse>("/v1/auth/login", None, &login).await.unwrap_err();
    assert_eq!((replay.code, replay.message.as_str()), (ErrorCode::Unauthorized, SIGN_IN_FAILED));

    // A failed attempt uses the challenge up too.
    let ch = challenge(&api, "ada").await;
    let wrong = sign_challenge(&api, "ada", "wrong", &ch).await;
    api.call::<SessionResponse>("/v1/auth/login", None, &wrong).await.unwrap_err();
    let right = sign_challenge(&api, "ada", "pw", &ch).await;
    let err = api.call::<SessionResponse>("/v1/auth/login", None, &right).await.unwrap_err();
    assert_eq!(err.message, SIGN_IN_FAILED);
}

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let server = TestServer::start(|c| c.challenge_ttl = Duration::ZERO).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;
    let err = sign_in(&api, "ada", "pw").await.unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (ErrorCode::Unauthorized, SIGN_IN_FAILED));
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let server = TestServer::start(|c| c.session_ttl = Duration::ZERO).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    Api::expect_error(api.get("/v1/auth/session", Some(ada.token())).await, ErrorCode::Unauthorized);
    let list = KvListRequest { collection: "todos".into(), page: PageQuery::default() };
    Api::expect_error(api.post("/v1/kv/list", Some(ada.token()), &list).await, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn signing_out_revokes_only_that_session() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let other = sign_in(&api, "ada", "pw").await.unwrap();

    let (status, _) = api.post("/v1/auth/signout", Some(ada.token()), &()).await;
    assert_eq!(status, 204);
    Api::expect_error(api.get("/v1/auth/session", Some(ada.token())).await, ErrorCode::Unauthorized);
    Api::expect_error(api.post("/v1/auth/signout", Some(ada.token()), &()).await, ErrorCode::Unauthorized);
    assert_eq!(api.get("/v1/auth/session", Some(&other.token)).await.0, 200);
}

#[tokio::test]
async fn forged_and_missing_tokens_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;
    Api::expect_error(api.get("/v1/auth/session", None).await, ErrorCode::Unauthorized);
    Api::expect_error(api.get("/v1/auth/session", Some("not-a-token")).await, ErrorCode::Unauthorized);
    let forged = b64::encode(random::<32>());
    Api::expect_error(api.get("/v1/auth/session", Some(&forged)).await, ErrorCode::Unauthorized);
    let basic =
        api.http.get(format!("{}/v1/auth/session", api.url)).basic_auth("ada", Some("pw")).send().await.unwrap();
    assert_eq!(basic.status(), 401);
}

/// The body the SDK sends to change the password: a challenge signed by the current
/// login key and the root rewrapped under the new one.
async fn change_password_request(api: &Api, ada: &Account, old: &str, new: &str) -> ChangePasswordRequest {
    let ch = challenge(api, &ada.username).await;
    let login = sign_challenge(api, &ada.username, old, &ch).await;
    let fresh = sign_up_request(&ada.username, new, &ada.root);
    ChangePasswordRequest {
        origin: login.origin,
        challenge_id: login.challenge_id,
        signature: login.signature,
        salt: fresh.salt,
        kdf: fresh.kdf,
        login_public_key: fresh.login_public_key,
        wrapped_root: fresh.wrapped_root,
    }
}

#[tokio::test]
async fn changing_the_password() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "old pw").await;
    let laptop = sign_in(&api, "ada", "old pw").await.unwrap();

    // A challenge signed with the wrong current password changes nothing.
    let bad = change_password_request(&api, &ada, "guess", "new pw").await;
    let err = api.call::<SessionInfo>("/v1/auth/password", Some(ada.token()), &bad).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
    // Neither does one without a session.
    let req = change_password_request(&api, &ada, "old pw", "new pw").await;
    Api::expect_error(api.post("/v1/auth/password", None, &req).await, ErrorCode::Unauthorized);
    // A challenge issued for another username is refused.
    sign_up(&api, "bob", "bob pw").await;
    let ch = challenge(&api, "bob").await;
    let bob_sig = sign_challenge(&api, "bob", "bob pw", &ch).await;
    let mut other = change_password_request(&api, &ada, "old pw", "new pw").await;
    other.challenge_id = bob_sig.challenge_id;
    other.signature = bob_sig.signature;
    let err = api.call::<SessionInfo>("/v1/auth/password", Some(ada.token()), &other).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
    sign_in(&api, "ada", "old pw").await.expect("still the old password");

    let req = change_password_request(&api, &ada, "old pw", "new pw").await;
    let info: SessionInfo = api.call("/v1/auth/password", Some(ada.token()), &req).await.expect("changed");
    assert_eq!(info.user_id, ada.user_id());
    assert!(info.user_public_key.is_some());
    assert_eq!(info.user_public_key, ada.session.user_public_key, "the published key is the account's: it stays");

    // This session goes on; the laptop's is revoked; the old password fails.
    assert_eq!(api.get("/v1/auth/session", Some(ada.token())).await.0, 200);
    Api::expect_error(api.get("/v1/auth/session", Some(&laptop.token)).await, ErrorCode::Unauthorized);
    assert_eq!(sign_in(&api, "ada", "old pw").await.unwrap_err().message, SIGN_IN_FAILED);
    let session = sign_in(&api, "ada", "new pw").await.expect("new password works");
    assert_eq!(session.user_public_key, ada.session.user_public_key);
    let salt: SaltResponse = api.call("/v1/auth/salt", None, &SaltRequest { username: "ada".into() }).await.unwrap();
    let pwk = account::derive_password_key("new pw", &b64::decode_array(&salt.salt).unwrap(), &salt.kdf).unwrap();
    let root = pwk.wrap_key().unwrap("ada", &b64::decode(&session.wrapped_root).unwrap()).unwrap();
    assert_eq!(root.as_bytes(), ada.root.as_bytes(), "same root secret, rewrapped");

    // Replaying the password change is refused (its challenge is used up).
    let err = api.call::<SessionInfo>("/v1/auth/password", Some(ada.token()), &req).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn a_signature_for_another_origin_is_refused() {
    // A malicious server relays our challenge to a user who reuses their password
    // there: the signature it gets back names its own origin.
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;
    let relay = "https://relay.example";
    let ch = challenge(&api, "ada").await;
    let mut relayed = sign_challenge_for(&api, relay, "ada", "pw", &ch).await;
    // Sent as signed, the origin is not this accelerator's: refused with a clear reason.
    let err = api.call::<SessionResponse>("/v1/auth/login", None, &relayed).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized);
    assert!(err.message.contains("relay.example") && err.message.contains(&api.url), "{}", err.message);
    // Claiming this accelerator's origin does not help: the signature names the relay's.
    let ch = challenge(&api, "ada").await;
    relayed = sign_challenge_for(&api, relay, "ada", "pw", &ch).await;
    relayed.origin = api.url.clone();
    let err = api.call::<SessionResponse>("/v1/auth/login", None, &relayed).await.unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (ErrorCode::Unauthorized, SIGN_IN_FAILED));
    // Nor does answering another challenge with a signature for this one.
    let first = challenge(&api, "ada").await;
    let second = challenge(&api, "ada").await;
    let mut swapped = sign_challenge(&api, "ada", "pw", &first).await;
    swapped.challenge_id = second.challenge_id;
    let err = api.call::<SessionResponse>("/v1/auth/login", None, &swapped).await.unwrap_err();
    assert_eq!(err.message, SIGN_IN_FAILED);
    sign_in(&api, "ada", "pw").await.expect("signs in for its own origin");
}

#[tokio::test]
async fn a_configured_public_origin_replaces_the_loopback_ones() {
    let server = TestServer::start(|c| c.public_origins = vec!["https://coffer.example".into()]).await;
    let api = server.api();
    sign_up(&api, "ada", "pw").await;
    let err = sign_in(&api, "ada", "pw").await.unwrap_err();
    assert!(err.message.contains("https://coffer.example"), "{}", err.message);
    // Behind a proxy at that origin, a device signs for it; the standard's form of it
    // (upper case, default port) is the same origin.
    let ch = challenge(&api, "ada").await;
    let login = sign_challenge_for(&api, "https://coffer.example", "ada", "pw", &ch).await;
    let login = LoginRequest { origin: "HTTPS://Coffer.Example:443".into(), ..login };
    api.call::<SessionResponse>("/v1/auth/login", None, &login).await.expect("signs in");
}
