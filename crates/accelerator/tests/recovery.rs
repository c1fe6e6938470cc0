//! Recovery codes (SPEC.md §3.8) over real HTTP, with the core's real codes and
//! keys: making one, recovering with it, what a stranger learns, every way a
//! recovery fails, its rate limits, and accounts from before recovery codes; and
//! the proof of the root (§3.9) that making a code takes: what a session token
//! alone cannot do, every way a proof fails, and the accelerator's key pair that
//! every challenge carries, the same from every instance and across restarts.

mod common;

use std::time::Duration;

use coffer_core::ErrorCode::{self, *};
use coffer_core::account::{self, RootSecret, WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION};
use coffer_core::b64;
use coffer_core::identity;
use coffer_core::kv::KvKeys;
use coffer_core::proto::*;
use coffer_core::recovery::RecoveryCode;
use common::*;

const SIGN_IN_FAILED: &str = coffer_accelerator::error::SIGN_IN_FAILED;
const ROOT_PROOF_FAILED: &str = coffer_accelerator::error::ROOT_PROOF_FAILED;

/// A fresh code, as the SDK draws one.
fn new_code() -> RecoveryCode {
    RecoveryCode::from_bytes(random())
}

/// The encoding of Ed25519's identity point: a public key of small order.
fn small_order_key() -> String {
    let mut key = [0u8; 32];
    key[0] = 1;
    b64::encode(key)
}

/// Makes `code` the account's recovery code.
async fn set_code(api: &Api, account: &Account, code: &RecoveryCode) {
    let req = set_recovery_request(api, &account.username, &account.root, code).await;
    account.post_empty(api, "/v1/auth/recovery", &req).await.expect("recovery code set");
}

/// The wrapped root a recovery challenge for `username` carries, decoded.
async fn challenge_root(api: &Api, username: &str) -> Vec<u8> {
    let challenge = recover_challenge(api, username).await.expect("a recovery challenge");
    b64::decode(&challenge.wrapped_root).expect("base64url")
}

/// `POST /v1/auth/recover` with this body.
async fn send_recover(api: &Api, req: &RecoverRequest) -> Result<SessionResponse, ErrorBody> {
    api.call("/v1/auth/recover", None, req).await
}

/// `POST /v1/auth/recovery` with this body and session token: `Ok` for 204, else
/// the error.
async fn send_set(api: &Api, token: &str, req: &SetRecoveryRequest) -> Result<(), ErrorBody> {
    let (status, body) = api.post("/v1/auth/recovery", Some(token), req).await;
    if status == 204 {
        return Ok(());
    }
    let err: ErrorBody = serde_json::from_value(body).expect("error shape");
    assert_eq!(status.as_u16(), err.code.http_status(), "status matches code");
    Err(err)
}

/// Asserts the answer every failed proof of the root gets.
fn proof_failed(answer: Result<(), ErrorBody>) {
    let err = answer.expect_err("refused");
    assert_eq!((err.code, err.message.as_str()), (Unauthorized, ROOT_PROOF_FAILED));
}

/// Asserts the answer every failed recovery gets.
fn sign_in_failed<T: std::fmt::Debug>(answer: Result<T, ErrorBody>) {
    let err = answer.expect_err("refused");
    assert_eq!((err.code, err.message.as_str()), (Unauthorized, SIGN_IN_FAILED));
}

#[tokio::test]
async fn a_recovery_code_sets_a_new_password_and_revokes_every_session() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "old pw").await;
    ada.set(&api, "notes", "n1", r#"{"text":"kept"}"#, true).await;
    let laptop = sign_in(&api, "ada", "old pw").await.unwrap();
    let code = new_code();
    set_code(&api, &ada, &code).await;

    // Ada forgot her password: the code alone opens the root and sets a new one.
    let (session, root) = recover(&api, "ada", &code, "new pw").await.expect("recovered");
    assert_eq!(root.as_bytes(), ada.root.as_bytes(), "the root the code wrapped");
    assert_eq!((session.user_id.as_str(), session.username.as_str()), (ada.user_id(), "ada"));
    assert_eq!(session.user_public_key, ada.session.user_public_key, "the account's key stays");
    assert_eq!(session.kv_seq, 1);
    let salt: SaltResponse = api.call("/v1/auth/salt", None, &SaltRequest { username: "ada".into() }).await.unwrap();
    let pwk = account::derive_password_key("new pw", &b64::decode_array(&salt.salt).unwrap(), &salt.kdf).unwrap();
    let rewrapped = pwk.wrap_key().unwrap("ada", &b64::decode(&session.wrapped_root).unwrap()).unwrap();
    assert_eq!(rewrapped.as_bytes(), ada.root.as_bytes(), "the answer carries the root under the new password");

    // The new session works, and with the same root every value opens; every
    // session from before is revoked.
    let info: SessionInfo = serde_json::from_value(api.get("/v1/auth/session", Some(&session.token)).await.1).unwrap();
    assert_eq!(info.user_id, ada.user_id());
    let recovered =
        Account { username: "ada".into(), password: "new pw".into(), session, keys: KvKeys::derive(&root), root };
    assert_eq!(recovered.get(&api, "notes", "n1").await.as_deref(), Some(r#"{"text":"kept"}"#));
    for token in [ada.token(), laptop.token.as_str()] {
        Api::expect_error(api.get("/v1/auth/session", Some(token)).await, Unauthorized);
    }

    // The old password is gone, the new one signs in and unwraps the same root.
    assert_eq!(sign_in(&api, "ada", "old pw").await.unwrap_err().message, SIGN_IN_FAILED);
    let again = sign_in(&api, "ada", "new pw").await.expect("the new password works");
    let root = pwk.wrap_key().unwrap("ada", &b64::decode(&again.wrapped_root).unwrap()).unwrap();
    assert_eq!(root.as_bytes(), ada.root.as_bytes());
}

#[tokio::test]
async fn a_code_keeps_working_until_a_new_one_replaces_it() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let first = new_code();
    set_code(&api, &ada, &first).await;

    recover(&api, "ada", &first, "pw 1").await.expect("the first recovery");
    recover(&api, "ada", &first, "pw 2").await.expect("the code still works after a recovery");
    sign_in(&api, "ada", "pw 2").await.expect("the latest password works");

    // A replayed recovery is refused: its challenge is used up.
    let challenge = recover_challenge(&api, "ada").await.unwrap();
    let req = recover_request(&api.url, "ada", &first.key(), &challenge, "pw 3", &ada.root);
    let session = send_recover(&api, &req).await.expect("recovered");
    sign_in_failed(send_recover(&api, &req).await);

    // A new code, made from the session the recovery gave: the old one stops working.
    let second = new_code();
    let req = set_recovery_request(&api, "ada", &ada.root, &second).await;
    let (status, body) = api.post("/v1/auth/recovery", Some(&session.token), &req).await;
    assert_eq!(status, 204, "{body}");
    let wrapped = challenge_root(&api, "ada").await;
    assert_eq!(second.key().wrap_key().unwrap("ada", &wrapped).unwrap().as_bytes(), ada.root.as_bytes());
    assert!(first.key().wrap_key().unwrap("ada", &wrapped).is_err(), "the old code opens nothing");
    // Even with the root in hand, a signature by the old code's key is refused.
    let challenge = recover_challenge(&api, "ada").await.unwrap();
    let req = recover_request(&api.url, "ada", &first.key(), &challenge, "pw 5", &ada.root);
    sign_in_failed(send_recover(&api, &req).await);
    sign_in(&api, "ada", "pw 3").await.expect("nothing changed");
    recover(&api, "ada", &second, "pw 6").await.expect("the new code works");
    sign_in(&api, "ada", "pw 6").await.expect("and set the password");
}

#[tokio::test]
async fn a_recovery_challenge_does_not_tell_whether_the_account_exists_or_has_a_code() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let code = new_code();
    set_code(&api, &ada, &code).await;

    let raw = |name: &'static str| {
        let api = api.clone();
        async move {
            let (status, body) =
                api.post("/v1/auth/recover/challenge", None, &ChallengeRequest { username: name.into() }).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let (with_code, without, unknown) = (raw("ada").await, raw("bob").await, raw("nobody").await);
    // The same fields, of the same lengths, as a login challenge's plus the root.
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&with_code), keys(&without));
    assert_eq!(keys(&with_code), keys(&unknown));
    let login = challenge(&api, "ada").await;
    for body in [&with_code, &without, &unknown] {
        let answer: RecoveryChallengeResponse = serde_json::from_value(body.clone()).unwrap();
        let wrapped = b64::decode(&answer.wrapped_root).unwrap();
        assert_eq!((wrapped.len(), wrapped[0]), (WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION), "{body}");
        assert_eq!(b64::decode(&answer.challenge).unwrap().len(), 32);
        assert_eq!(answer.challenge_id.len(), login.challenge_id.len());
        assert_eq!(answer.expires_in_ms, login.expires_in_ms);
    }
    // Ada's is the one she made; the others are made up, stable per name, and each
    // name has its own.
    let ada_root = challenge_root(&api, "ada").await;
    assert_eq!(code.key().wrap_key().unwrap("ada", &ada_root).unwrap().as_bytes(), ada.root.as_bytes());
    let (bob_root, nobody_root) = (challenge_root(&api, "bob").await, challenge_root(&api, "nobody").await);
    assert_eq!(challenge_root(&api, "bob").await, bob_root);
    assert_eq!(challenge_root(&api, "nobody").await, nobody_root);
    assert_ne!(bob_root, nobody_root);
    assert_ne!(challenge_root(&api, "somebody-else").await, nobody_root);
    assert!(code.key().wrap_key().unwrap("bob", &bob_root).is_err());

    // Stable across a restart: the server secret is kept in the records.
    let server = server.restart(|_| {}).await;
    let api = server.api();
    assert_eq!(challenge_root(&api, "bob").await, bob_root);
    assert_eq!(challenge_root(&api, "nobody").await, nobody_root);

    // Once bob makes a code, his answer is his own.
    let bob = Account { session: sign_in(&api, "bob", "pw").await.unwrap(), ..bob };
    let bobs_code = new_code();
    set_code(&api, &bob, &bobs_code).await;
    let now = challenge_root(&api, "bob").await;
    assert_ne!(now, bob_root);
    assert_eq!(bobs_code.key().wrap_key().unwrap("bob", &now).unwrap().as_bytes(), bob.root.as_bytes());
}

#[tokio::test]
async fn every_failed_recovery_is_the_same_unauthorized_and_changes_nothing() {
    // Failures enough to be refused for the count instead are not what this tests.
    let server = TestServer::start(|c| c.limits.free_login_failures = 100).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let code = new_code();
    set_code(&api, &ada, &code).await;
    let password_key = |name: &str| {
        let api = api.clone();
        let name = name.to_owned();
        async move {
            let salt: SaltResponse = api.call("/v1/auth/salt", None, &SaltRequest { username: name }).await.unwrap();
            account::derive_password_key("pw", &b64::decode_array(&salt.salt).unwrap(), &salt.kdf).unwrap()
        }
    };
    let attempt = |signer: account::PasswordKey, origin: &'static str| {
        let api = api.clone();
        let root = RootSecret::from_bytes(*ada.root.as_bytes());
        async move {
            let challenge = recover_challenge(&api, "ada").await.unwrap();
            let origin = if origin.is_empty() { api.url.clone() } else { origin.to_owned() };
            send_recover(&api, &recover_request(&origin, "ada", &signer, &challenge, "stolen", &root)).await
        }
    };

    // Another code's key; the password's own login key; a key nobody has.
    sign_in_failed(attempt(new_code().key(), "").await);
    sign_in_failed(attempt(password_key("ada").await, "").await);
    sign_in_failed(attempt(account::PasswordKey::from_bytes(random()), "").await);
    // An account without a code, and an unknown name, fail the same way.
    for name in ["bob", "nobody"] {
        let challenge = recover_challenge(&api, name).await.unwrap();
        let req = recover_request(&api.url, name, &new_code().key(), &challenge, "stolen", &bob.root);
        sign_in_failed(send_recover(&api, &req).await);
    }
    // Bob's login key on his own account: a password is not a recovery code.
    let challenge = recover_challenge(&api, "bob").await.unwrap();
    let req = recover_request(&api.url, "bob", &password_key("bob").await, &challenge, "stolen", &bob.root);
    sign_in_failed(send_recover(&api, &req).await);
    // The recovery key does not sign in either: it is not the login key.
    let challenge = recover_challenge(&api, "ada").await.unwrap();
    let req = recover_request(&api.url, "ada", &code.key(), &challenge, "unused", &ada.root);
    let login = LoginRequest { origin: req.origin, challenge_id: req.challenge_id, signature: req.signature };
    sign_in_failed(api.call::<SessionResponse>("/v1/auth/login", None, &login).await);

    // A challenge is used up by a failed attempt: the right signature then fails.
    let challenge = recover_challenge(&api, "ada").await.unwrap();
    let wrong = recover_request(&api.url, "ada", &new_code().key(), &challenge, "stolen", &ada.root);
    sign_in_failed(send_recover(&api, &wrong).await);
    let right = recover_request(&api.url, "ada", &code.key(), &challenge, "stolen", &ada.root);
    sign_in_failed(send_recover(&api, &right).await);
    // An unknown challenge id; a signature over another challenge.
    let mut unknown = recover_request(&api.url, "ada", &code.key(), &challenge, "stolen", &ada.root);
    unknown.challenge_id = b64::encode(random::<16>());
    sign_in_failed(send_recover(&api, &unknown).await);
    let (first, second) =
        (recover_challenge(&api, "ada").await.unwrap(), recover_challenge(&api, "ada").await.unwrap());
    let mut swapped = recover_request(&api.url, "ada", &code.key(), &first, "stolen", &ada.root);
    swapped.challenge_id = second.challenge_id;
    sign_in_failed(send_recover(&api, &swapped).await);

    // Signed for another origin (a server relaying our challenge): refused with the
    // reason, and claiming ours does not help.
    let relay = "https://relay.example";
    let err = attempt(code.key(), relay).await.unwrap_err();
    assert_eq!(err.code, Unauthorized);
    assert!(err.message.contains("relay.example") && err.message.contains(&api.url), "{}", err.message);
    let challenge = recover_challenge(&api, "ada").await.unwrap();
    let mut relayed = recover_request(relay, "ada", &code.key(), &challenge, "stolen", &ada.root);
    relayed.origin = api.url.clone();
    sign_in_failed(send_recover(&api, &relayed).await);

    // Nothing changed: every session lives, the password and the code work.
    assert_eq!(api.get("/v1/auth/session", Some(ada.token())).await.0, 200);
    assert_eq!(api.get("/v1/auth/session", Some(bob.token())).await.0, 200);
    sign_in(&api, "ada", "pw").await.expect("the old password still works");
    sign_in(&api, "bob", "pw").await.expect("bob's too");
    recover(&api, "ada", &code, "new pw").await.expect("the code still works");

    // An expired challenge is refused too. (The code is made while challenges last:
    // making one takes a challenge as well.)
    let server = TestServer::start(|_| {}).await;
    let ada = sign_up(&server.api(), "ada", "pw").await;
    set_code(&server.api(), &ada, &code).await;
    let server = server.restart(|c| c.challenge_ttl = Duration::ZERO).await;
    sign_in_failed(recover(&server.api(), "ada", &code, "new pw").await);
}

#[tokio::test]
async fn the_new_password_is_checked_before_the_challenge_is_taken() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let code = new_code();
    set_code(&api, &ada, &code).await;
    let challenge = recover_challenge(&api, "ada").await.unwrap();
    let good = recover_request(&api.url, "ada", &code.key(), &challenge, "new pw", &ada.root);
    let spoiled: Vec<(&str, RecoverRequest)> = vec![
        ("a short salt", RecoverRequest { salt: b64::encode([1u8; 15]), ..good.clone() }),
        (
            "weak KDF parameters",
            RecoverRequest { kdf: account::KdfParams { iterations: 0, ..good.kdf.clone() }, ..good.clone() },
        ),
        ("a small-order login key", RecoverRequest { login_public_key: small_order_key(), ..good.clone() }),
        ("a short wrapped root", RecoverRequest { wrapped_root: b64::encode([1u8; 60]), ..good.clone() }),
        ("an unknown wrapped root version", RecoverRequest { wrapped_root: b64::encode([2u8; 61]), ..good.clone() }),
        ("a short signature", RecoverRequest { signature: b64::encode([1u8; 63]), ..good.clone() }),
        ("an empty challenge id", RecoverRequest { challenge_id: String::new(), ..good.clone() }),
    ];
    for (what, req) in spoiled {
        let err = send_recover(&api, &req).await.expect_err(what);
        assert_eq!(err.code, InvalidInput, "{what}: {}", err.message);
    }
    send_recover(&api, &good).await.expect("the challenge was still there");
    sign_in(&api, "ada", "new pw").await.unwrap();
}

#[tokio::test]
async fn making_a_code_needs_a_session_and_checks_what_it_stores() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let made_up = challenge_root(&api, "ada").await;
    let good = set_recovery_request(&api, "ada", &ada.root, &new_code()).await;

    Api::expect_error(api.post("/v1/auth/recovery", None, &good).await, Unauthorized);
    Api::expect_error(api.post("/v1/auth/recovery", Some("not-a-token"), &good).await, Unauthorized);
    let cases: Vec<(&str, SetRecoveryRequest, &str)> = vec![
        (
            "a short key",
            SetRecoveryRequest { recovery_public_key: b64::encode([3u8; 31]), ..good.clone() },
            "recoveryPublicKey",
        ),
        (
            "a key not base64url",
            SetRecoveryRequest { recovery_public_key: "+/==".into(), ..good.clone() },
            "recoveryPublicKey",
        ),
        (
            "a small-order key",
            SetRecoveryRequest { recovery_public_key: small_order_key(), ..good.clone() },
            "recoveryPublicKey",
        ),
        ("a short root", SetRecoveryRequest { wrapped_root: b64::encode([1u8; 60]), ..good.clone() }, "wrappedRoot"),
        ("a long root", SetRecoveryRequest { wrapped_root: b64::encode([1u8; 62]), ..good.clone() }, "wrappedRoot"),
        (
            "an unknown version",
            SetRecoveryRequest { wrapped_root: b64::encode([2u8; 61]), ..good.clone() },
            "version 2",
        ),
        ("no root", SetRecoveryRequest { wrapped_root: String::new(), ..good.clone() }, "wrappedRoot"),
        ("a short proof", SetRecoveryRequest { root_proof: b64::encode([4u8; 31]), ..good.clone() }, "rootProof"),
        ("a long proof", SetRecoveryRequest { root_proof: b64::encode([4u8; 33]), ..good.clone() }, "rootProof"),
        ("a proof not base64url", SetRecoveryRequest { root_proof: "+/==".into(), ..good.clone() }, "rootProof"),
        ("no proof", SetRecoveryRequest { root_proof: String::new(), ..good.clone() }, "rootProof"),
        ("no challenge id", SetRecoveryRequest { challenge_id: String::new(), ..good.clone() }, "challengeId"),
        ("a long challenge id", SetRecoveryRequest { challenge_id: "c".repeat(65), ..good.clone() }, "challengeId"),
    ];
    for (what, req, names) in cases {
        let message = Api::expect_error(api.post("/v1/auth/recovery", Some(ada.token()), &req).await, InvalidInput);
        assert!(message.contains(names), "{what}: {message}");
    }
    let missing = serde_json::json!({ "recoveryPublicKey": good.recovery_public_key });
    Api::expect_error(api.post("/v1/auth/recovery", Some(ada.token()), &missing).await, InvalidInput);
    assert_eq!(challenge_root(&api, "ada").await, made_up, "nothing was stored");

    // None of those took the challenge: the good request still finds it.
    let (status, body) = api.post("/v1/auth/recovery", Some(ada.token()), &good).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(challenge_root(&api, "ada").await, b64::decode(&good.wrapped_root).unwrap());
}

#[tokio::test]
async fn failed_recoveries_slow_down_like_failed_logins() {
    let server = TestServer::start(|c| {
        c.limits.free_login_failures = 3;
        c.limits.login_backoff_base = Duration::from_millis(200);
        c.limits.login_backoff_max = Duration::from_millis(800);
    })
    .await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let code = new_code();
    set_code(&api, &ada, &code).await;
    let guess = || {
        let api = api.clone();
        let root = RootSecret::from_bytes(*ada.root.as_bytes());
        async move {
            let challenge = recover_challenge(&api, "ada").await?;
            send_recover(&api, &recover_request(&api.url, "ada", &new_code().key(), &challenge, "x", &root)).await
        }
    };
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(guess().await.unwrap_err().code);
    }
    assert_eq!(&outcomes[..3], [Unauthorized; 3], "the first failures cost nothing");
    assert!(outcomes[4..].iter().all(|c| *c == RateLimited), "{outcomes:?}");
    // The count is the username's, whichever way it is guessed: logins wait too.
    assert_eq!(sign_in(&api, "ada", "pw").await.unwrap_err().code, RateLimited);
    // The owner waits at most the cap, then recovers; success clears the count.
    tokio::time::sleep(Duration::from_millis(900)).await;
    recover(&api, "ada", &code, "new pw").await.expect("the owner gets in after the wait");
    assert_eq!(guess().await.unwrap_err().code, Unauthorized);
    // Failed logins count against recoveries as well.
    for _ in 0..4 {
        sign_in(&api, "ada", "wrong").await.unwrap_err();
    }
    assert_eq!(recover(&api, "ada", &code, "newer pw").await.unwrap_err().code, RateLimited);
}

#[tokio::test]
async fn a_session_token_alone_cannot_set_a_recovery_code() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let code = new_code();
    set_code(&api, &ada, &code).await;
    let in_force = challenge_root(&api, "ada").await;

    // A thief holds a session token of ada's, but not her root secret: he makes up
    // a proof, or makes one with a root of his own, to set a code of his.
    let stolen = sign_in(&api, "ada", "pw").await.unwrap().token;
    let (thiefs_code, thiefs_root) = (new_code(), RootSecret::from_bytes(random()));
    let fresh = challenge(&api, "ada").await;
    let mut made_up = set_recovery_request_for(&api.url, "ada", &thiefs_root, &thiefs_code, &fresh);
    made_up.root_proof = b64::encode(random::<32>());
    proof_failed(send_set(&api, &stolen, &made_up).await);
    let own_root = set_recovery_request(&api, "ada", &thiefs_root, &thiefs_code).await;
    proof_failed(send_set(&api, &stolen, &own_root).await);
    // Even with ada's real wrapped root in hand (as the recovery challenge gives
    // it), the proof is what counts.
    let mut with_her_root = set_recovery_request(&api, "ada", &thiefs_root, &thiefs_code).await;
    with_her_root.wrapped_root = b64::encode(&in_force);
    proof_failed(send_set(&api, &stolen, &with_her_root).await);

    // Ada's code is still the one in force: the thief's recovers nothing, hers does.
    assert_eq!(challenge_root(&api, "ada").await, in_force);
    let for_thief = recover_challenge(&api, "ada").await.unwrap();
    let takeover = recover_request(&api.url, "ada", &thiefs_code.key(), &for_thief, "mine now", &thiefs_root);
    sign_in_failed(send_recover(&api, &takeover).await);
    assert_eq!(api.get("/v1/auth/session", Some(ada.token())).await.0, 200, "nothing was revoked");
    sign_in(&api, "ada", "pw").await.expect("the password is unchanged");
    recover(&api, "ada", &code, "new pw").await.expect("ada's own code still works");

    // An account without a code stays without one.
    let bob = sign_up(&api, "bob", "pw").await;
    let none = challenge_root(&api, "bob").await;
    let mut made_up = set_recovery_request(&api, "bob", &thiefs_root, &thiefs_code).await;
    made_up.root_proof = b64::encode(random::<32>());
    proof_failed(send_set(&api, bob.token(), &made_up).await);
    assert_eq!(challenge_root(&api, "bob").await, none, "still the made-up root");
    let for_thief = recover_challenge(&api, "bob").await.unwrap();
    let takeover = recover_request(&api.url, "bob", &thiefs_code.key(), &for_thief, "mine now", &thiefs_root);
    sign_in_failed(send_recover(&api, &takeover).await);
}

#[tokio::test]
async fn every_failed_proof_of_the_root_is_unauthorized_and_changes_nothing() {
    // Failures enough to be refused for the count instead are not what this tests.
    let server = TestServer::start(|c| {
        c.limits.free_login_failures = 100;
        c.limits.auth_burst_per_username = 1000;
    })
    .await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let code = new_code();
    set_code(&api, &ada, &code).await;
    let in_force = challenge_root(&api, "ada").await;
    let other = new_code();
    let for_ada = || challenge(&api, "ada");
    let set = |req: SetRecoveryRequest| {
        let api = api.clone();
        let token = ada.token().to_owned();
        async move { send_set(&api, &token, &req).await }
    };

    // A proof by another user's key (bob's, for ada's challenge, in ada's session).
    proof_failed(set(set_recovery_request_for(&api.url, "ada", &bob.root, &other, &for_ada().await)).await);
    // A proof for another challenge than the one it names.
    let (first, second) = (for_ada().await, for_ada().await);
    let swapped = SetRecoveryRequest {
        challenge_id: second.challenge_id.clone(),
        ..set_recovery_request_for(&api.url, "ada", &ada.root, &other, &first)
    };
    proof_failed(set(swapped).await);
    // An unknown challenge id.
    let unknown = SetRecoveryRequest {
        challenge_id: b64::encode(random::<16>()),
        ..set_recovery_request_for(&api.url, "ada", &ada.root, &other, &first)
    };
    proof_failed(set(unknown).await);
    // A challenge issued for another username: proved for it as issued, or as if
    // it were ada's.
    for claimed in ["bob", "ada"] {
        let for_bob = challenge(&api, "bob").await;
        proof_failed(set(set_recovery_request_for(&api.url, claimed, &ada.root, &other, &for_bob)).await);
    }
    // Bob's session cannot use ada's proof: its challenge is hers, not his, and her
    // proof is not made with his key.
    let hers = set_recovery_request_for(&api.url, "ada", &ada.root, &other, &for_ada().await);
    proof_failed(send_set(&api, bob.token(), &hers).await);
    // A proof made to another accelerator's key (another deployment's).
    let elsewhere = TestServer::start(|_| {}).await;
    let their_key = challenge(&elsewhere.api(), "ada").await.server_public_key;
    let to_them = ChallengeResponse { server_public_key: their_key, ..for_ada().await };
    proof_failed(set(set_recovery_request_for(&api.url, "ada", &ada.root, &other, &to_them)).await);

    // Proved for another origin (a server relaying our challenge): refused with the
    // reason, as a login is, and claiming ours does not help.
    let relay = "https://relay.example";
    let err = set(set_recovery_request_for(relay, "ada", &ada.root, &other, &for_ada().await)).await.unwrap_err();
    assert_eq!(err.code, Unauthorized);
    assert!(err.message.contains("relay.example") && err.message.contains(&api.url), "{}", err.message);
    let relayed = SetRecoveryRequest {
        origin: api.url.clone(),
        ..set_recovery_request_for(relay, "ada", &ada.root, &other, &for_ada().await)
    };
    proof_failed(set(relayed).await);

    // A challenge is used up by a failed attempt: the right proof then fails.
    let fresh = for_ada().await;
    let wrong = set_recovery_request_for(&api.url, "ada", &bob.root, &other, &fresh);
    proof_failed(set(wrong).await);
    proof_failed(set(set_recovery_request_for(&api.url, "ada", &ada.root, &other, &fresh)).await);

    // Nothing changed: the code in force is ada's, every session lives.
    assert_eq!(challenge_root(&api, "ada").await, in_force);
    assert!(other.key().wrap_key().unwrap("ada", &in_force).is_err());
    assert_eq!(api.get("/v1/auth/session", Some(ada.token())).await.0, 200);
    assert_eq!(api.get("/v1/auth/session", Some(bob.token())).await.0, 200);

    // The right request works once; replayed, its challenge is used up.
    let right = set_recovery_request(&api, "ada", &ada.root, &other).await;
    set(right.clone()).await.expect("a proof of the root sets the code");
    proof_failed(set(right).await);
    let now = challenge_root(&api, "ada").await;
    assert_eq!(other.key().wrap_key().unwrap("ada", &now).unwrap().as_bytes(), ada.root.as_bytes());
    recover(&api, "ada", &other, "new pw").await.expect("the new code works");

    // An expired challenge is refused too.
    let server = TestServer::start(|c| c.challenge_ttl = Duration::ZERO).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let late = set_recovery_request(&api, "ada", &ada.root, &code).await;
    proof_failed(send_set(&api, ada.token(), &late).await);
}

#[tokio::test]
async fn an_account_must_publish_its_key_before_it_makes_a_code() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up_with(&api, "ada", "pw", false).await;
    let code = new_code();
    let req = set_recovery_request(&api, "ada", &ada.root, &code).await;
    let err = send_set(&api, ada.token(), &req).await.unwrap_err();
    assert_eq!(err.code, Conflict);
    assert!(err.message.contains("publish this account's public key first"), "{}", err.message);

    // Once it is published, the same request (its challenge was not taken) works.
    ada.publish_key(&api).await.expect("published");
    send_set(&api, ada.token(), &req).await.expect("the code is set");
    recover(&api, "ada", &code, "new pw").await.expect("and recovers");
}

#[tokio::test]
async fn a_session_token_alone_cannot_publish_a_key_to_prove_the_root_with() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    // Ada's account is from before public keys: none is published yet.
    let ada = sign_up_with(&api, "ada", "pw", false).await;

    // A thief holds a session token of ada's, but neither her password nor her
    // root secret. He publishes a key of his own for her account (signed with a
    // login key of his, the only one he has), to prove a root of his against it
    // and set a code of his.
    let stolen = sign_in(&api, "ada", "pw").await.unwrap().token;
    let (thiefs_code, thiefs_root) = (new_code(), RootSecret::from_bytes(random()));
    let thiefs_key = identity::UserKeys::derive(&thiefs_root).public_key();
    let thiefs_login = account::PasswordKey::from_bytes(random()).login_key();
    let publish = publish_key_request_for(&api.url, "ada", &thiefs_login, &challenge(&api, "ada").await, &thiefs_key);
    let (status, body) = api.post("/v1/auth/public-key", Some(&stolen), &publish).await;
    let err: ErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!((status.as_u16(), err.code), (401, Unauthorized), "{}", err.message);
    assert_eq!(err.message, coffer_accelerator::error::PUBLICATION_FAILED);
    let session: SessionInfo = serde_json::from_value(api.get("/v1/auth/session", Some(&stolen)).await.1).unwrap();
    assert_eq!(session.user_public_key, None, "nothing published");
    // Without a published key, no code can be set.
    let set = set_recovery_request(&api, "ada", &thiefs_root, &thiefs_code).await;
    let err = send_set(&api, &stolen, &set).await.unwrap_err();
    assert_eq!(err.code, Conflict);
    assert!(err.message.contains("publish this account's public key first"), "{}", err.message);
    let for_thief = recover_challenge(&api, "ada").await.unwrap();
    let takeover = recover_request(&api.url, "ada", &thiefs_code.key(), &for_thief, "mine now", &thiefs_root);
    sign_in_failed(send_recover(&api, &takeover).await);

    // Ada still publishes her own key and sets her own code; the thief's proof does
    // not check against her key either.
    ada.publish_key(&api).await.expect("published");
    let session: SessionInfo = serde_json::from_value(api.get("/v1/auth/session", Some(&stolen)).await.1).unwrap();
    assert_eq!(session.user_public_key, Some(b64::encode(ada.user_keys().public_key())));
    let set = set_recovery_request(&api, "ada", &thiefs_root, &thiefs_code).await;
    proof_failed(send_set(&api, &stolen, &set).await);
    let code = new_code();
    set_code(&api, &ada, &code).await;
    let (_, root) = recover(&api, "ada", &code, "new pw").await.expect("her code recovers");
    assert_eq!(root.as_bytes(), ada.root.as_bytes());
}

#[tokio::test]
async fn every_challenge_carries_one_server_key_from_every_instance() {
    // Two accelerators on one PostgreSQL database, whatever backend the tests run on.
    let one = TestServer::start_on(tempfile::tempdir().unwrap(), Data::postgres().await, |_| {}).await;
    let two = one.another(|_| {}).await;
    let (api, other) = (one.api(), two.api());
    let ada = sign_up(&api, "ada", "pw").await;

    let key = challenge(&api, "ada").await.server_public_key;
    let bytes: [u8; identity::PUBLIC_KEY_LEN] = b64::decode_array(&key).expect("32 bytes of base64url");
    assert_eq!(identity::check_public_key(&bytes), Ok(()), "a usable X25519 key");
    assert_eq!(challenge(&api, "ada").await.server_public_key, key, "the same in every challenge");
    assert_eq!(challenge(&api, "nobody").await.server_public_key, key, "whatever the username");
    assert_eq!(challenge(&other, "ada").await.server_public_key, key, "and from the other instance");

    // A proof made to the key of one instance's challenge checks at the other.
    let code = new_code();
    let fresh = challenge(&api, "ada").await;
    send_set(&other, ada.token(), &set_recovery_request_for(&other.url, "ada", &ada.root, &code, &fresh))
        .await
        .expect("the other instance checks it");
    recover(&api, "ada", &code, "new pw").await.expect("and the code works on the first");

    // Another deployment has a pair of its own.
    let elsewhere = TestServer::start(|_| {}).await;
    assert_ne!(challenge(&elsewhere.api(), "ada").await.server_public_key, key);
}

#[tokio::test]
async fn the_server_key_survives_a_restart() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let key = challenge(&api, "ada").await.server_public_key;

    let server = server.restart(|_| {}).await;
    let api = server.api();
    assert_eq!(challenge(&api, "ada").await.server_public_key, key);
    // A device that kept the key from before makes a proof the new process checks.
    let session = sign_in(&api, "ada", "pw").await.unwrap();
    let code = new_code();
    let fresh = ChallengeResponse { server_public_key: key, ..challenge(&api, "ada").await };
    let req = set_recovery_request_for(&api.url, "ada", &ada.root, &code, &fresh);
    send_set(&api, &session.token, &req).await.expect("set after the restart");
}

#[tokio::test]
async fn failed_proofs_of_the_root_slow_down_like_failed_logins() {
    let server = TestServer::start(|c| {
        c.limits.free_login_failures = 2;
        c.limits.login_backoff_base = Duration::from_millis(500);
        c.limits.login_backoff_max = Duration::from_millis(500);
    })
    .await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let guess = || {
        let api = api.clone();
        let token = ada.token().to_owned();
        async move {
            let fresh: ChallengeResponse =
                api.call("/v1/auth/challenge", None, &ChallengeRequest { username: "ada".into() }).await?;
            let mut req =
                set_recovery_request_for(&api.url, "ada", &RootSecret::from_bytes(random()), &new_code(), &fresh);
            req.root_proof = b64::encode(random::<32>());
            send_set(&api, &token, &req).await
        }
    };
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(guess().await.unwrap_err().code);
    }
    assert_eq!(&outcomes[..3], [Unauthorized; 3], "the first failures cost nothing");
    assert!(outcomes[3..].iter().all(|c| *c == RateLimited), "{outcomes:?}");
    // The count is the username's: logins wait too.
    assert_eq!(sign_in(&api, "ada", "pw").await.unwrap_err().code, RateLimited);
    // After the wait the owner, who holds the root, sets a code; that clears the count.
    tokio::time::sleep(Duration::from_millis(600)).await;
    set_code(&api, &ada, &new_code()).await;
    assert_eq!(guess().await.unwrap_err().code, Unauthorized);
}

/// The schema before recovery codes, and an account in it as an accelerator of
/// that version left it.
mod before_recovery {
    use super::*;
    use common::old_schema::{blob, user_insert};

    /// The INSERT of ada, who signs in with "pw", and her root secret.
    pub fn ada(postgres: bool) -> (String, RootSecret) {
        let root = RootSecret::from_bytes(random());
        let public = coffer_core::identity::UserKeys::derive(&root).public_key();
        let id = new_id();
        let sql = user_insert(&id, "ada", &root, (0, 0), postgres)
            + &format!("UPDATE users SET user_public_key = {} WHERE user_id = '{id}';", blob(&public, postgres));
        (sql, root)
    }
}

#[tokio::test]
async fn an_account_from_before_recovery_codes_has_none_and_can_make_one() {
    let (sql, root) = before_recovery::ada(remote_backend());
    let server = common::old_schema::server(6, 4, &sql).await;
    let api = server.api();
    let session = sign_in(&api, "ada", "pw").await.expect("an old account signs in");
    let ada = Account { username: "ada".into(), password: "pw".into(), session, keys: KvKeys::derive(&root), root };

    // No code: a made-up root, and no code recovers.
    let made_up = challenge_root(&api, "ada").await;
    assert_eq!((made_up.len(), made_up[0]), (WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION));
    assert_eq!(challenge_root(&api, "ada").await, made_up);
    let code = new_code();
    let challenge = recover_challenge(&api, "ada").await.unwrap();
    let req = recover_request(&api.url, "ada", &code.key(), &challenge, "new pw", &ada.root);
    sign_in_failed(send_recover(&api, &req).await);
    assert_eq!(api.get("/v1/auth/session", Some(ada.token())).await.0, 200, "nothing changed");

    // It makes one, and recovers with it.
    set_code(&api, &ada, &code).await;
    let (_, root) = recover(&api, "ada", &code, "new pw").await.expect("recovered");
    assert_eq!(root.as_bytes(), ada.root.as_bytes());
    sign_in(&api, "ada", "new pw").await.expect("the new password works");
    let err: ErrorCode = sign_in(&api, "ada", "pw").await.unwrap_err().code;
    assert_eq!(err, Unauthorized);
}
