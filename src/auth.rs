//! The account flows against the accelerator: sign-up, sign-in, password change.
//! Every secret is derived here in the browser (by the core); the accelerator sees
//! the salt, the KDF parameters, the login public key, the wrapped root and the
//! account's X25519 public key only.

use coffer_core::account::{self, KdfParams, LoginChallenge, PasswordKey, RootSecret, SALT_LEN};
use coffer_core::identity::UserKeys;
use coffer_core::proto::{
    ChallengeRequest, ChallengeResponse, ChangePasswordRequest, LoginRequest, PublishKeyRequest, RecoverRequest,
    RecoveryChallengeResponse, SaltRequest, SaltResponse, SessionInfo, SessionResponse, SetRecoveryRequest,
    SignUpRequest,
};
use coffer_core::recovery::RecoveryCode;
use coffer_core::{ErrorCode, b64, validate};

use crate::error::{SdkError, SdkResult};
use crate::http::Http;
use crate::random;

/// A fresh salt and the default parameters, derived into a password key.
fn new_password_key(password: &str) -> SdkResult<([u8; SALT_LEN], KdfParams, PasswordKey)> {
    let salt = random::bytes::<SALT_LEN>();
    let kdf = KdfParams::default();
    let key = account::derive_password_key(password, &salt, &kdf)?;
    Ok((salt, kdf, key))
}

fn check_password(password: &str) -> SdkResult<()> {
    if password.is_empty() {
        return Err(SdkError::invalid("password must not be empty"));
    }
    Ok(())
}

/// Creates an account with a new random root secret.
pub async fn sign_up(http: &Http, username: &str, password: &str) -> SdkResult<(SessionResponse, RootSecret)> {
    validate::username(username)?;
    check_password(password)?;
    let (salt, kdf, key) = new_password_key(password)?;
    let root = RootSecret::from_bytes(random::bytes());
    let request = SignUpRequest {
        username: username.to_owned(),
        salt: b64::encode(salt),
        kdf,
        login_public_key: b64::encode(key.login_key().public_key()),
        wrapped_root: b64::encode(key.wrap_key().wrap(&root, username, random::bytes())),
        user_public_key: Some(b64::encode(UserKeys::derive(&root).public_key())),
    };
    let session: SessionResponse = http.post("/v1/auth/signup", &request).await?;
    Ok((session, root))
}

/// Derives the current password key from the salt the accelerator records.
async fn current_password_key(http: &Http, username: &str, password: &str) -> SdkResult<PasswordKey> {
    let salt: SaltResponse = http.post("/v1/auth/salt", &SaltRequest { username: username.to_owned() }).await?;
    let salt_bytes = b64::decode_array::<SALT_LEN>(&salt.salt)
        .ok_or_else(|| SdkError::network("the accelerator sent a malformed salt"))?;
    Ok(account::derive_password_key(password, &salt_bytes, &salt.kdf)?)
}

/// A challenge for `username`, signed with `key`'s login key for the accelerator's
/// origin as this client reaches it (SPEC.md §3.3).
struct SignedChallenge {
    /// The origin the signature binds.
    origin: String,
    /// The challenge answered.
    challenge_id: String,
    /// The signature, base64url.
    signature: String,
}

async fn signed_challenge(http: &Http, username: &str, key: &PasswordKey) -> SdkResult<SignedChallenge> {
    let challenge: ChallengeResponse =
        http.post("/v1/auth/challenge", &ChallengeRequest { username: username.to_owned() }).await?;
    let bytes = b64::decode(&challenge.challenge).ok_or_else(|| SdkError::network("malformed challenge"))?;
    let origin = http.origin();
    let signed = LoginChallenge { origin: &origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    let signature = b64::encode(key.login_key().sign_challenge(&signed));
    Ok(SignedChallenge { origin, challenge_id: challenge.challenge_id, signature })
}

/// Signs in with username and password and unwraps the root secret.
pub async fn sign_in(http: &Http, username: &str, password: &str) -> SdkResult<(SessionResponse, RootSecret)> {
    validate::username(username)?;
    check_password(password)?;
    let key = current_password_key(http, username, password).await?;
    let SignedChallenge { origin, challenge_id, signature } = signed_challenge(http, username, &key).await?;
    let mut session: SessionResponse =
        http.post("/v1/auth/login", &LoginRequest { origin, challenge_id, signature }).await?;
    let wrapped = b64::decode(&session.wrapped_root)
        .ok_or_else(|| SdkError::network("the accelerator sent a malformed wrapped root secret"))?;
    let root = key.wrap_key().unwrap(username, &wrapped).map_err(|e| {
        SdkError::new(ErrorCode::Integrity, format!("signed in, but the account's root secret did not open: {e}"))
    })?;
    if session.user_public_key.is_none() {
        // An account from before keys were published: the password is at hand now.
        let public = UserKeys::derive(&root).public_key();
        match publish_key(http, &session.token, username, &key, &public).await {
            Ok(()) => session.user_public_key = Some(b64::encode(public)),
            Err(e) => crate::js::warn(&format!("coffer: could not publish this account's public key: {}", e.message)),
        }
    }
    Ok((session, root))
}

/// Makes a new recovery code for the account (SPEC.md §3.8); the accelerator keeps
/// its public key and the root wrapped under it, and forgets the previous code. The
/// request carries a proof that this device holds the root secret (§3.9), made with
/// `identity`, the account's published key pair.
pub async fn create_recovery_code(
    http: &Http,
    username: &str,
    root: &RootSecret,
    identity: &UserKeys,
) -> SdkResult<String> {
    let challenge: ChallengeResponse =
        http.post("/v1/auth/challenge", &ChallengeRequest { username: username.to_owned() }).await?;
    let bytes = b64::decode(&challenge.challenge).ok_or_else(|| SdkError::network("malformed challenge"))?;
    let server = b64::decode_array::<32>(&challenge.server_public_key)
        .ok_or_else(|| SdkError::network("the accelerator sent no usable public key with its challenge"))?;
    let origin = http.origin();
    let signed = LoginChallenge { origin: &origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    let root_proof = b64::encode(identity.root_proof(&server, &signed)?);
    let code = RecoveryCode::from_bytes(random::bytes());
    let key = code.key();
    let request = SetRecoveryRequest {
        origin,
        challenge_id: challenge.challenge_id,
        root_proof,
        recovery_public_key: b64::encode(key.login_key().public_key()),
        wrapped_root: b64::encode(key.wrap_key().wrap(root, username, random::bytes())),
    };
    http.post_empty("/v1/auth/recovery", &request).await?;
    // It goes to JavaScript as a string anyway.
    Ok(code.encode().as_str().to_owned())
}

/// Recovers an account with its recovery code: unwraps the root with the code, sets
/// `new_password` and signs in; every other session of the account is revoked.
pub async fn recover(
    http: &Http,
    username: &str,
    code: &str,
    new_password: &str,
) -> SdkResult<(SessionResponse, RootSecret)> {
    validate::username(username)?;
    check_password(new_password)?;
    let code = RecoveryCode::parse(code)?;
    let key = code.key();
    let challenge: RecoveryChallengeResponse =
        http.post("/v1/auth/recover/challenge", &ChallengeRequest { username: username.to_owned() }).await?;
    let wrong = || SdkError::new(ErrorCode::Unauthorized, "wrong username or recovery code");
    let wrapped = b64::decode(&challenge.wrapped_root).ok_or_else(wrong)?;
    let root = key.wrap_key().unwrap(username, &wrapped).map_err(|_| wrong())?;
    let bytes = b64::decode(&challenge.challenge).ok_or_else(|| SdkError::network("malformed challenge"))?;
    let origin = http.origin();
    let signed = LoginChallenge { origin: &origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    let signature = b64::encode(key.login_key().sign_challenge(&signed));
    let (salt, kdf, new_key) = new_password_key(new_password)?;
    let request = RecoverRequest {
        origin: origin.clone(),
        challenge_id: challenge.challenge_id,
        signature,
        salt: b64::encode(salt),
        kdf,
        login_public_key: b64::encode(new_key.login_key().public_key()),
        wrapped_root: b64::encode(new_key.wrap_key().wrap(&root, username, random::bytes())),
    };
    let session: SessionResponse = http.post("/v1/auth/recover", &request).await?;
    Ok((session, root))
}

/// Publishes the account's X25519 public key, signed with the login key over a fresh
/// challenge (SPEC.md §3.6), with the new session's token.
async fn publish_key(http: &Http, token: &str, username: &str, key: &PasswordKey, public: &[u8; 32]) -> SdkResult<()> {
    let challenge: ChallengeResponse =
        http.post("/v1/auth/challenge", &ChallengeRequest { username: username.to_owned() }).await?;
    let bytes = b64::decode(&challenge.challenge).ok_or_else(|| SdkError::network("malformed challenge"))?;
    let origin = http.origin();
    let signed = LoginChallenge { origin: &origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    let request = PublishKeyRequest {
        signature: b64::encode(key.login_key().sign_publication(&signed, public)),
        origin,
        challenge_id: challenge.challenge_id,
        user_public_key: b64::encode(public),
    };
    let signed_in = Http::new(http.base())?;
    signed_in.set_token(Some(token.to_owned()));
    signed_in.post_empty("/v1/auth/public-key", &request).await
}

/// Rewraps the root secret under a new password; the old password stops working and
/// the account's other sessions are revoked.
pub async fn change_password(
    http: &Http,
    username: &str,
    root: &RootSecret,
    current: &str,
    new: &str,
) -> SdkResult<SessionInfo> {
    check_password(new)?;
    let old_key = current_password_key(http, username, current).await?;
    let SignedChallenge { origin, challenge_id, signature } = signed_challenge(http, username, &old_key).await?;
    let (salt, kdf, key) = new_password_key(new)?;
    let request = ChangePasswordRequest {
        origin,
        challenge_id,
        signature,
        salt: b64::encode(salt),
        kdf,
        login_public_key: b64::encode(key.login_key().public_key()),
        wrapped_root: b64::encode(key.wrap_key().wrap(root, username, random::bytes())),
    };
    http.post("/v1/auth/password", &request).await
}
