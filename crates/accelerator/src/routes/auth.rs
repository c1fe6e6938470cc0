//! Signing in without a password on the wire.
//!
//! The device derives an Ed25519 login key from the password; the accelerator keeps
//! the public half and, to sign in, hands out a random single-use challenge that the
//! device signs ([`coffer_core::account`]) together with this accelerator's origin as
//! the device reached it and the challenge's id, so a signature obtained by another
//! server that relayed our challenge is refused. A session is a random bearer token of
//! which only the SHA-256 is stored. Every failed sign-in answers the same
//! `Unauthorized` message, and the salt of an unknown username is a stable made-up
//! one, so neither reveals whether a username exists.
//!
//! An account also publishes its X25519 public key (SPEC.md §3.6), with its sign-up
//! or later (`POST /v1/auth/public-key`), so that the members of its spaces can seal
//! new space keys to it (F.12). It derives from the root secret, so it never
//! changes: the same key again is accepted, another one is `Conflict`. Session
//! answers carry it. Published later, it takes more than a session token: the
//! publication is signed with the password's login key, as a password change is,
//! for a fresh challenge issued for the session's username and this accelerator's
//! origin. Otherwise a stolen token could publish a key of the thief's for an
//! account that has none, prove the root against it (below) and set a recovery code
//! of the thief's. A sign-up's key needs no more: the sign-up itself sets the
//! password.
//!
//! A recovery code (SPEC.md §3.8) stands in for a forgotten password. A signed-in
//! device makes one (`POST /v1/auth/recovery`): the public half of the code's
//! recovery key, which plays the login key's part, and the root wrapped under the
//! code, replacing any earlier code. A session token is not enough for that, or a
//! stolen one could set a code of the thief's and later take the account over: the
//! device also proves it holds the account's root secret (SPEC.md §3.9), with an
//! X25519 exchange between the account's published key and the accelerator's own
//! pair, for a fresh challenge issued for the session's username and for this
//! accelerator's origin. The accelerator's pair derives from the server secret
//! ([`crate::secret`]), so every instance has it; its public half goes out with
//! every challenge (`serverPublicKey`). To recover, a device asks for a challenge
//! (`POST /v1/auth/recover/challenge`), which comes from the same store as a login's
//! and carries the root as wrapped under the code, signs it with the recovery key
//! and sends a new password's credentials (`POST /v1/auth/recover`): checked as a
//! login is (the same origins, the same rate limits and count of failures per
//! username, the same `Unauthorized` for every failure), they replace the password
//! and every session of the account is revoked. A username that does not exist or
//! has no code is answered a made-up wrapped root, stable per username, so the
//! challenge does not tell either. The code keeps working until a new one replaces
//! it.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use coffer_core::account::{self, KdfParams, SALT_LEN, WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION};
use coffer_core::identity::{self, PUBLIC_KEY_LEN};
use coffer_core::proto::{
    ChallengeRequest, ChallengeResponse, ChangePasswordRequest, LoginRequest, PublishKeyRequest, RecoverRequest,
    RecoveryChallengeResponse, SaltRequest, SaltResponse, SessionInfo, SessionResponse, SetRecoveryRequest,
    SignUpRequest,
};
use coffer_core::validate;
use coffer_core::{ErrorCode, b64};

use sha2::{Digest, Sha256};

use crate::error::{ApiError, Json};
use crate::session::{Authed, ClientAddress};
use crate::state::{AppState, expiry_ms, now_ms};
use crate::store::{Authorised, Challenge, Credentials, Recovery, Session, User};

/// Longest challenge id accepted (ids are 22 characters; this leaves room).
const MAX_CHALLENGE_ID_LEN: usize = 64;

/// Bytes of a proof of the root (SPEC.md §3.9: an HMAC-SHA256).
const ROOT_PROOF_LEN: usize = 32;

/// `N` bytes from the operating system's random source.
pub fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
    Ok(bytes)
}

/// The longest body a sign-up or sign-in route takes (the largest valid one, with a
/// username of 128 bytes and a long origin, is under 2 KiB).
pub const MAX_SIGN_IN_BODY_BYTES: usize = 8 * 1024;

fn decode_fixed<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], ApiError> {
    b64::decode_array(text).ok_or_else(|| ApiError::invalid(format!("{what} must be {N} bytes of base64url")))
}

/// Checks the public half of a key that signs challenges (a login key, or a
/// recovery code's recovery key), named `what` on the wire.
fn signing_key(text: &str, what: &'static str) -> Result<[u8; 32], ApiError> {
    let key = decode_fixed::<32>(text, what)?;
    account::check_public_key(&key)
        .map_err(|_| ApiError::invalid(format!("{what} is not a usable Ed25519 public key")))?;
    Ok(key)
}

/// Checks the shape of a wrapped root (SPEC.md §3.4): 61 bytes, version `0x01`.
/// What is inside stays opaque.
fn wrapped_root(text: &str) -> Result<Vec<u8>, ApiError> {
    let wrapped = b64::decode(text)
        .filter(|w| w.len() == WRAPPED_ROOT_LEN)
        .ok_or_else(|| ApiError::invalid(format!("wrappedRoot must be {WRAPPED_ROOT_LEN} bytes of base64url")))?;
    if wrapped[0] != WRAPPED_ROOT_VERSION {
        return Err(ApiError::invalid(format!(
            "wrappedRoot has unknown version {}; this accelerator knows version {WRAPPED_ROOT_VERSION}",
            wrapped[0]
        )));
    }
    Ok(wrapped)
}

/// Checks the public material of a new password.
fn credentials(salt: &str, kdf: &KdfParams, login_public_key: &str, wrapped: &str) -> Result<Credentials, ApiError> {
    let salt = decode_fixed::<SALT_LEN>(salt, "salt")?;
    kdf.check().map_err(|e| ApiError::invalid(e.to_string()))?;
    let login_public_key = signing_key(login_public_key, "loginPublicKey")?;
    let wrapped_root = wrapped_root(wrapped)?;
    Ok(Credentials { salt, kdf: kdf.clone(), login_public_key, wrapped_root })
}

/// Checks an account's X25519 public key: 32 bytes, not of small order.
fn user_public_key(text: &str) -> Result<[u8; PUBLIC_KEY_LEN], ApiError> {
    let key = decode_fixed::<PUBLIC_KEY_LEN>(text, "userPublicKey")?;
    identity::check_public_key(&key).map_err(|_| {
        ApiError::invalid(
            "userPublicKey is not a usable X25519 public key (it has small order); derive it from the account's \
             root secret",
        )
    })?;
    Ok(key)
}

/// What the accelerator knows of a session, as answered.
fn session_info(s: Session) -> SessionInfo {
    SessionInfo {
        user_id: s.user_id,
        username: s.username,
        kv_seq: s.kv_seq,
        expires_at_ms: s.expires_at_ms,
        user_public_key: s.user_public_key.map(b64::encode),
    }
}

fn challenge_id(text: &str) -> Result<String, ApiError> {
    if text.is_empty() || text.len() > MAX_CHALLENGE_ID_LEN {
        return Err(ApiError::invalid("challengeId is malformed; ask for a new challenge"));
    }
    Ok(text.to_owned())
}

/// Creates a session for `user` and answers with it; past the cap on sessions per
/// user, the oldest is revoked (and its feeds are woken to notice).
async fn open_session(state: &AppState, user: User) -> Result<Json<SessionResponse>, ApiError> {
    let token: [u8; 32] = random()?;
    let hash: [u8; 32] = Sha256::digest(token).into();
    let expires_at_ms = expiry_ms(state.config.session_ttl);
    let keep = state.config.limits.max_sessions_per_user;
    state.records.create_session(&hash, &user.user_id, expires_at_ms, now_ms(), keep).await?;
    state.feed.wake(&user.user_id);
    Ok(Json(SessionResponse {
        token: b64::encode(token),
        user_id: user.user_id,
        username: user.username,
        wrapped_root: b64::encode(&user.credentials.wrapped_root),
        kv_seq: user.kv_seq,
        expires_at_ms,
        user_public_key: user.user_public_key.map(b64::encode),
    }))
}

/// Which of an account's keys signs a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    /// The login key of the current password.
    Password,
    /// The recovery key of the account's recovery code.
    RecoveryCode,
}

impl Signer {
    /// The public key `user` holds for this signer; `None` for a recovery code the
    /// account never made.
    fn key_of(self, user: &User) -> Option<[u8; 32]> {
        match self {
            Signer::Password => Some(user.credentials.login_public_key),
            Signer::RecoveryCode => user.recovery.as_ref().map(|r| r.public_key),
        }
    }
}

/// What a signature over a challenge signs, and what its failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signed<'a> {
    /// A sign-in (a login, a password change, a recovery): the challenge alone
    /// (`account::login_message`). Fails as [`ApiError::sign_in_failed`].
    SignIn,
    /// The publication of this X25519 public key of the account
    /// (`account::publication_message`). Fails as [`ApiError::publication_failed`].
    Publication(&'a [u8; PUBLIC_KEY_LEN]),
}

impl Signed<'_> {
    /// Whether `signature` by `key` signs this over `login`.
    fn checks(self, key: &[u8; 32], login: &account::LoginChallenge<'_>, signature: &[u8; 64]) -> bool {
        match self {
            Signed::SignIn => account::verify_login(key, login, signature).is_ok(),
            Signed::Publication(user_public_key) => {
                account::verify_publication(key, login, user_public_key, signature).is_ok()
            }
        }
    }

    /// The one answer to every failure of the challenge or the signature.
    fn failed(self) -> ApiError {
        match self {
            Signed::SignIn => ApiError::sign_in_failed(),
            Signed::Publication(_) => ApiError::publication_failed(),
        }
    }
}

/// `origin`, canonical, if this accelerator answers at it (`--public-origin`);
/// otherwise `Unauthorized`, naming the origins it does answer at. A login, a
/// password change, a recovery, a key publication and a proof of the root are all
/// bound to one.
fn own_origin(state: &AppState, origin: &str) -> Result<String, ApiError> {
    let origins = &state.config.public_origins;
    account::canonical_origin(origin).filter(|o| origins.contains(o)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            format!(
                "this accelerator answers at {}, but the sign-in was signed for {origin:?}: connect to one of \
                 those (its operator sets them with --public-origin)",
                origins.join(", ")
            ),
        )
    })
}

/// Takes a challenge and checks a signature of `signed` over it with the user's
/// current key of `signer`. Every way this can fail is the same
/// [`Signed::failed`], except that an origin this accelerator does not answer at is
/// told so ([`own_origin`]) and a username with too many recent failures is told to
/// wait (`RateLimited`); a failed recovery or key publication counts against the
/// username as a failed login does, and a success clears the count as a login does.
///
/// An unknown username, or a recovery for an account without a code, costs the same
/// work as a wrong password: the signature is checked against a stand-in key, so
/// the time taken says nothing either.
async fn check_signed_challenge(
    state: &AppState,
    origin: &str,
    challenge_id: String,
    signature: &[u8; 64],
    username_must_be: Option<&str>,
    signer: Signer,
    signed: Signed<'_>,
) -> Result<User, ApiError> {
    let origin = own_origin(state, origin)?;
    let challenge = state.records.take_challenge(&challenge_id).await?;
    let challenge = challenge.ok_or_else(|| signed.failed())?;
    if now_ms() >= challenge.expires_at_ms {
        return Err(signed.failed());
    }
    if username_must_be.is_some_and(|name| name != challenge.username) {
        return Err(signed.failed());
    }
    state.throttle.login_allowed(&challenge.username)?;
    let user = state.records.user_by_name(&challenge.username).await?;
    let key = user.as_ref().and_then(|u| signer.key_of(u));
    let login = account::LoginChallenge {
        origin: &origin,
        challenge_id: &challenge_id,
        username: &challenge.username,
        challenge: &challenge.challenge,
    };
    // Checked against the stand-in key when there is no key: nobody holds it, and
    // the answer is refused all the same.
    let checks = signed.checks(&key.unwrap_or(state.secret.stand_in_key), &login, signature);
    let user = user.filter(|_| checks && key.is_some());
    state.throttle.login_outcome(&challenge.username, user.is_some());
    user.ok_or_else(|| signed.failed())
}

/// `POST /v1/auth/salt`.
pub async fn salt(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Json(req): Json<SaltRequest>,
) -> Result<Json<SaltResponse>, ApiError> {
    state.throttle.address(from)?;
    validate::username(&req.username)?;
    let user = state.records.user_by_name(&req.username).await?;
    Ok(Json(match user {
        Some(user) => SaltResponse { salt: b64::encode(user.credentials.salt), kdf: user.credentials.kdf },
        None => SaltResponse { salt: b64::encode(state.secret.fake_salt(&req.username)), kdf: KdfParams::default() },
    }))
}

/// `POST /v1/auth/signup`.
pub async fn signup(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Json(req): Json<SignUpRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    state.throttle.signup(from)?;
    validate::username(&req.username)?;
    let credentials = credentials(&req.salt, &req.kdf, &req.login_public_key, &req.wrapped_root)?;
    let user_public_key = req.user_public_key.as_deref().map(user_public_key).transpose()?;
    let user = User {
        user_id: b64::encode(random::<16>()?),
        username: req.username,
        credentials,
        kv_seq: 0,
        user_public_key,
        recovery: None,
    };
    state.records.create_user(&user).await?;
    open_session(&state, user).await
}

/// Records a single-use challenge for `username`, known or not, within the sign-in
/// limits of `from` and the username: what a login and a recovery start with.
async fn issue_challenge(
    state: &AppState,
    from: Option<IpAddr>,
    username: &str,
) -> Result<ChallengeResponse, ApiError> {
    state.throttle.address(from)?;
    validate::username(username)?;
    state.throttle.username(username)?;
    let ttl = state.config.challenge_ttl;
    let challenge = Challenge {
        challenge_id: b64::encode(random::<16>()?),
        username: username.to_owned(),
        challenge: random()?,
        expires_at_ms: expiry_ms(ttl),
    };
    let response = ChallengeResponse {
        challenge_id: challenge.challenge_id.clone(),
        challenge: b64::encode(challenge.challenge),
        expires_in_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
        server_public_key: b64::encode(state.secret.server_keys.public_key()),
    };
    let now = now_ms();
    state.records.create_challenge(&challenge, now).await?;
    Ok(response)
}

/// `POST /v1/auth/challenge`. Issued for any well-formed username, known or not,
/// with the accelerator's X25519 public key (the same from every instance).
pub async fn challenge(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Json(req): Json<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    Ok(Json(issue_challenge(&state, from, &req.username).await?))
}

/// `POST /v1/auth/login`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Json(req): Json<LoginRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    state.throttle.address(from)?;
    let id = challenge_id(&req.challenge_id)?;
    let signature = decode_fixed::<64>(&req.signature, "signature")?;
    let user =
        check_signed_challenge(&state, &req.origin, id, &signature, None, Signer::Password, Signed::SignIn).await?;
    open_session(&state, user).await
}

/// `GET /v1/auth/session`.
pub async fn session(authed: Authed) -> Json<SessionInfo> {
    Json(session_info(authed.session))
}

/// `POST /v1/auth/public-key`: publishes the account's public key, signed with the
/// current login key (`account::publication_message`) for a challenge issued for
/// the session's username (`POST /v1/auth/challenge`), taken single use, for this
/// accelerator's origin. 204, also for the same key again; another key is
/// `Conflict`. A wrong origin is the `Unauthorized` a login gets; any other failure
/// of the challenge or the signature is the one `Unauthorized` of
/// [`ApiError::publication_failed`], and counts against the username as a failed
/// password change does.
pub async fn publish_key(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    authed: Authed,
    Json(req): Json<PublishKeyRequest>,
) -> Result<StatusCode, ApiError> {
    state.throttle.address(from)?;
    state.throttle.username(&authed.session.username)?;
    let id = challenge_id(&req.challenge_id)?;
    let signature = decode_fixed::<64>(&req.signature, "signature")?;
    let key = user_public_key(&req.user_public_key)?;
    let username = Some(authed.session.username.as_str());
    let signed = Signed::Publication(&key);
    let user = check_signed_challenge(&state, &req.origin, id, &signature, username, Signer::Password, signed).await?;
    if user.user_id != authed.session.user_id {
        return Err(signed.failed());
    }
    state.records.publish_key(&user.user_id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/password`: a challenge signed with the current login key, then
/// the new credentials replace the old ones and every other session is revoked.
pub async fn change_password(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    authed: Authed,
    Json(req): Json<ChangePasswordRequest>,
) -> Result<Json<SessionInfo>, ApiError> {
    state.throttle.address(from)?;
    state.throttle.username(&authed.session.username)?;
    let id = challenge_id(&req.challenge_id)?;
    let signature = decode_fixed::<64>(&req.signature, "signature")?;
    let new = credentials(&req.salt, &req.kdf, &req.login_public_key, &req.wrapped_root)?;
    let username = Some(authed.session.username.as_str());
    let user =
        check_signed_challenge(&state, &req.origin, id, &signature, username, Signer::Password, Signed::SignIn).await?;
    if user.user_id != authed.session.user_id {
        return Err(ApiError::sign_in_failed());
    }
    let by = Authorised::Login(user.credentials.login_public_key);
    let replaced = state.records.replace_credentials(&user.user_id, &by, &new, Some(&authed.token_hash)).await?;
    if !replaced {
        // Another password change won the race; this one's signature is stale.
        return Err(ApiError::sign_in_failed());
    }
    // Feed sockets of the revoked sessions notice on this wake-up.
    state.feed.wake(&user.user_id);
    // The published key is the account's, not the password's: it stays.
    Ok(Json(session_info(authed.session)))
}

/// `POST /v1/auth/recovery`: makes the account's recovery code, replacing any
/// earlier one, which stops working. 204.
///
/// Besides the session, a proof of the root (SPEC.md §3.9) for a challenge issued
/// for the session's username (`POST /v1/auth/challenge`), taken single use, for
/// this accelerator's origin, checked against the account's published key. An
/// account that has not published its key is `Conflict`; a wrong origin is the
/// `Unauthorized` a login gets; any other failure of the challenge or the proof is
/// the one `Unauthorized` of [`ApiError::root_proof_failed`], and counts against the
/// username as a failed password change does (and a success clears the count).
pub async fn set_recovery(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    authed: Authed,
    Json(req): Json<SetRecoveryRequest>,
) -> Result<StatusCode, ApiError> {
    state.throttle.address(from)?;
    let username = authed.session.username.as_str();
    state.throttle.username(username)?;
    let id = challenge_id(&req.challenge_id)?;
    let proof = decode_fixed::<ROOT_PROOF_LEN>(&req.root_proof, "rootProof")?;
    let recovery = Recovery {
        public_key: signing_key(&req.recovery_public_key, "recoveryPublicKey")?,
        wrapped_root: wrapped_root(&req.wrapped_root)?,
    };
    let user_public = authed.session.user_public_key.ok_or_else(|| {
        ApiError::new(
            ErrorCode::Conflict,
            "publish this account's public key first (POST /v1/auth/public-key): setting a recovery code takes a \
             proof of the root secret, which is checked against it",
        )
    })?;
    let origin = own_origin(&state, &req.origin)?;
    let challenge = state.records.take_challenge(&id).await?;
    let proved = challenge.filter(|c| now_ms() < c.expires_at_ms && c.username == username).is_some_and(|c| {
        let login = account::LoginChallenge {
            origin: &origin,
            challenge_id: &id,
            username: &c.username,
            challenge: &c.challenge,
        };
        state.secret.server_keys.check_root_proof(&user_public, &login, &proof)
    });
    state.throttle.login_outcome(username, proved);
    if !proved {
        return Err(ApiError::root_proof_failed());
    }
    state.records.set_recovery(&authed.session.user_id, &recovery).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth/recover/challenge`: a challenge as for a login, with the root as
/// wrapped under the account's recovery code, or a made-up one, stable per
/// username, for a username that does not exist or has no code. The account is
/// looked up and the made-up root derived in every case, so neither the answer
/// nor the time it takes tells them apart.
pub async fn recover_challenge(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Json(req): Json<ChallengeRequest>,
) -> Result<Json<RecoveryChallengeResponse>, ApiError> {
    let challenge = issue_challenge(&state, from, &req.username).await?;
    let user = state.records.user_by_name(&req.username).await?;
    let made_up = state.secret.fake_recovery_root(&req.username);
    let wrapped = user.and_then(|u| u.recovery).map_or(made_up, |r| r.wrapped_root);
    Ok(Json(RecoveryChallengeResponse {
        challenge_id: challenge.challenge_id,
        challenge: challenge.challenge,
        expires_in_ms: challenge.expires_in_ms,
        wrapped_root: b64::encode(wrapped),
    }))
}

/// `POST /v1/auth/recover`: a challenge signed with the account's recovery key, then
/// the new password's credentials replace the old ones, every session of the
/// account is revoked and a new one answered. The recovery code stays.
pub async fn recover(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Json(req): Json<RecoverRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    state.throttle.address(from)?;
    let id = challenge_id(&req.challenge_id)?;
    let signature = decode_fixed::<64>(&req.signature, "signature")?;
    let new = credentials(&req.salt, &req.kdf, &req.login_public_key, &req.wrapped_root)?;
    let user =
        check_signed_challenge(&state, &req.origin, id, &signature, None, Signer::RecoveryCode, Signed::SignIn).await?;
    let code_key = Signer::RecoveryCode.key_of(&user).ok_or_else(ApiError::sign_in_failed)?;
    let by = Authorised::Recovery(code_key);
    if !state.records.replace_credentials(&user.user_id, &by, &new, None).await? {
        // A new code replaced this one meanwhile; this signature is stale.
        return Err(ApiError::sign_in_failed());
    }
    // Feed sockets of the revoked sessions notice on this wake-up.
    state.feed.wake(&user.user_id);
    open_session(&state, User { credentials: new, ..user }).await
}

/// `POST /v1/auth/signout`: revokes the session. 204.
pub async fn signout(State(state): State<AppState>, authed: Authed) -> Result<StatusCode, ApiError> {
    if let Some(user_id) = state.records.delete_session(&authed.token_hash).await? {
        state.feed.wake(&user_id);
    }
    Ok(StatusCode::NO_CONTENT)
}
