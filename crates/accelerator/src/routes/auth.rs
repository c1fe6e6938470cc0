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

use axum::extract::State;
use axum::http::StatusCode;
use coffer_core::account::{self, KdfParams, SALT_LEN, WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION};
use coffer_core::proto::{
    ChallengeRequest, ChallengeResponse, ChangePasswordRequest, LoginRequest, SaltRequest, SaltResponse, SessionInfo,
    SessionResponse, SignUpRequest,
};
use coffer_core::validate;
use coffer_core::{ErrorCode, b64};

use sha2::{Digest, Sha256};

use crate::error::{ApiError, Json};
use crate::session::{Authed, ClientAddress};
use crate::state::{AppState, expiry_ms, now_ms};
use crate::store::{Challenge, Credentials, User};

/// Longest challenge id accepted (ids are 22 characters; this leaves room).
const MAX_CHALLENGE_ID_LEN: usize = 64;

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

/// Checks the public material of a new password.
fn credentials(
    salt: &str,
    kdf: &KdfParams,
    login_public_key: &str,
    wrapped_root: &str,
) -> Result<Credentials, ApiError> {
    let salt = decode_fixed::<SALT_LEN>(salt, "salt")?;
    kdf.check().map_err(|e| ApiError::invalid(e.to_string()))?;
    let login_public_key = decode_fixed::<32>(login_public_key, "loginPublicKey")?;
    account::check_public_key(&login_public_key)
        .map_err(|_| ApiError::invalid("loginPublicKey is not a usable Ed25519 public key"))?;
    let wrapped = b64::decode(wrapped_root)
        .filter(|w| w.len() == WRAPPED_ROOT_LEN)
        .ok_or_else(|| ApiError::invalid(format!("wrappedRoot must be {WRAPPED_ROOT_LEN} bytes of base64url")))?;
    if wrapped[0] != WRAPPED_ROOT_VERSION {
        return Err(ApiError::invalid(format!(
            "wrappedRoot has unknown version {}; this accelerator knows version {WRAPPED_ROOT_VERSION}",
            wrapped[0]
        )));
    }
    Ok(Credentials { salt, kdf: kdf.clone(), login_public_key, wrapped_root: wrapped })
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
    }))
}

/// Takes a challenge and checks a signature over it with the user's current key.
/// Every way this can fail is the same [`ApiError::sign_in_failed`], except that a
/// username with too many recent failures is told to wait (`RateLimited`).
///
/// An unknown username costs the same work as a wrong password: the signature is
/// checked against a stand-in key, so the time taken says nothing either.
async fn check_signed_challenge(
    state: &AppState,
    origin: &str,
    challenge_id: String,
    signature: &[u8; 64],
    username_must_be: Option<&str>,
) -> Result<User, ApiError> {
    let origins = &state.config.public_origins;
    let origin = account::canonical_origin(origin).filter(|o| origins.contains(o)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            format!(
                "this accelerator answers at {}, but the sign-in was signed for {origin:?}: connect to one of \
                 those (its operator sets them with --public-origin)",
                origins.join(", ")
            ),
        )
    })?;
    let challenge = state.records.take_challenge(&challenge_id).await?;
    let challenge = challenge.ok_or_else(ApiError::sign_in_failed)?;
    if now_ms() >= challenge.expires_at_ms {
        return Err(ApiError::sign_in_failed());
    }
    if username_must_be.is_some_and(|name| name != challenge.username) {
        return Err(ApiError::sign_in_failed());
    }
    state.throttle.login_allowed(&challenge.username)?;
    let user = state.records.user_by_name(&challenge.username).await?;
    let key = user.as_ref().map_or(state.secret.stand_in_key, |u| u.credentials.login_public_key);
    let login = account::LoginChallenge {
        origin: &origin,
        challenge_id: &challenge_id,
        username: &challenge.username,
        challenge: &challenge.challenge,
    };
    let signed = account::verify_login(&key, &login, signature).is_ok();
    let user = user.filter(|_| signed);
    state.throttle.login_outcome(&challenge.username, user.is_some());
    user.ok_or_else(ApiError::sign_in_failed)
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
    let user = User { user_id: b64::encode(random::<16>()?), username: req.username, credentials, kv_seq: 0 };
    state.records.create_user(&user).await?;
    open_session(&state, user).await
}

/// `POST /v1/auth/challenge`. Issued for any well-formed username, known or not.
pub async fn challenge(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    Json(req): Json<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    state.throttle.address(from)?;
    validate::username(&req.username)?;
    state.throttle.username(&req.username)?;
    let ttl = state.config.challenge_ttl;
    let challenge = Challenge {
        challenge_id: b64::encode(random::<16>()?),
        username: req.username,
        challenge: random()?,
        expires_at_ms: expiry_ms(ttl),
    };
    let response = ChallengeResponse {
        challenge_id: challenge.challenge_id.clone(),
        challenge: b64::encode(challenge.challenge),
        expires_in_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
    };
    let now = now_ms();
    state.records.create_challenge(&challenge, now).await?;
    Ok(Json(response))
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
    let user = check_signed_challenge(&state, &req.origin, id, &signature, None).await?;
    open_session(&state, user).await
}

/// `GET /v1/auth/session`.
pub async fn session(authed: Authed) -> Json<SessionInfo> {
    let s = authed.session;
    Json(SessionInfo { user_id: s.user_id, username: s.username, kv_seq: s.kv_seq, expires_at_ms: s.expires_at_ms })
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
    let user = check_signed_challenge(&state, &req.origin, id, &signature, Some(&authed.session.username)).await?;
    if user.user_id != authed.session.user_id {
        return Err(ApiError::sign_in_failed());
    }
    let old_key = user.credentials.login_public_key;
    let replaced = state.records.replace_credentials(&user.user_id, &old_key, &new, &authed.token_hash).await?;
    if !replaced {
        // Another password change won the race; this one's signature is stale.
        return Err(ApiError::sign_in_failed());
    }
    // Feed sockets of the revoked sessions notice on this wake-up.
    state.feed.wake(&user.user_id);
    let s = authed.session;
    Ok(Json(SessionInfo { user_id: s.user_id, username: s.username, kv_seq: s.kv_seq, expires_at_ms: s.expires_at_ms }))
}

/// `POST /v1/auth/signout`: revokes the session. 204.
pub async fn signout(State(state): State<AppState>, authed: Authed) -> Result<StatusCode, ApiError> {
    if let Some(user_id) = state.records.delete_session(&authed.token_hash).await? {
        state.feed.wake(&user_id);
    }
    Ok(StatusCode::NO_CONTENT)
}
