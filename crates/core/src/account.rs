//! Account keys (SPEC.md, "Account").
//!
//! ```text
//! password ──Argon2id(salt, KdfParams)──▶ password key (32 B)
//!     ├─HKDF "coffer/v1/login-key"─▶ Ed25519 seed ─▶ login key (accelerator keeps the public half)
//!     └─HKDF "coffer/v1/wrap-key"──▶ wrap key ─AES-256-GCM─▶ wrapped root secret (accelerator keeps it)
//! root secret (32 random bytes, never leaves the device unwrapped)
//!     └─HKDF "coffer/v1/kv" …      ─▶ the kv keys (see `kv`)
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::primitives::{NONCE_LEN, TAG_LEN, hkdf32, open, push_lp, seal};
use crate::{Coded, ErrorCode};

/// HKDF label of the Ed25519 login key seed.
pub const LABEL_LOGIN_KEY: &[u8] = b"coffer/v1/login-key";
/// HKDF label of the wrap key.
pub const LABEL_WRAP_KEY: &[u8] = b"coffer/v1/wrap-key";
/// Domain prefix of the message the login key signs.
pub const LABEL_LOGIN_SIGNATURE: &[u8] = b"coffer/v2/login-signature";
/// Domain prefix of the wrapped root's AAD.
pub const LABEL_WRAPPED_ROOT: &[u8] = b"coffer/v1/wrapped-root";
/// First byte of a wrapped root secret.
pub const WRAPPED_ROOT_VERSION: u8 = 1;
/// Length of a wrapped root secret: version, nonce, sealed 32 bytes, tag.
pub const WRAPPED_ROOT_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;
/// Bytes of Argon2id salt.
pub const SALT_LEN: usize = 16;
/// Bytes of a login challenge.
pub const CHALLENGE_LEN: usize = 32;
/// The only password KDF this version knows.
pub const KDF_ARGON2ID: &str = "argon2id";

/// Argon2id parameters, recorded per account so they can be raised later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KdfParams {
    /// Always `"argon2id"` (version 0x13) in this version.
    pub alg: String,
    /// Memory in KiB.
    pub mem_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// OWASP's recommended minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        KdfParams { alg: KDF_ARGON2ID.into(), mem_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

impl KdfParams {
    /// The smallest memory a client accepts (8 MiB), so an accelerator cannot talk a
    /// device into a derivation cheap enough to brute-force.
    pub const MIN_MEM_KIB: u32 = 8 * 1024;
    /// The largest memory a client accepts (1 GiB).
    pub const MAX_MEM_KIB: u32 = 1024 * 1024;

    /// Refuses unknown algorithms and parameters outside sane bounds.
    pub fn check(&self) -> Result<(), AccountError> {
        let ok = self.alg == KDF_ARGON2ID
            && (Self::MIN_MEM_KIB..=Self::MAX_MEM_KIB).contains(&self.mem_kib)
            && (1..=16).contains(&self.iterations)
            && (1..=16).contains(&self.parallelism);
        if ok { Ok(()) } else { Err(AccountError::KdfParams) }
    }
}

/// Why an account operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// KDF parameters that this version refuses to use.
    #[error("unsupported or unsafe password-derivation parameters")]
    KdfParams,
    /// A wrapped root secret with a version byte this version does not know.
    #[error("wrapped root secret has unknown version {0}; update the SDK")]
    UnknownVersion(u8),
    /// A wrapped root secret of the wrong length.
    #[error("wrapped root secret is malformed")]
    Malformed,
    /// The wrapped root secret did not open: wrong password, or tampered.
    #[error("wrong password, or the account data was tampered with")]
    Unwrap,
    /// A login signature that does not verify.
    #[error("login signature does not verify")]
    BadSignature,
}

impl Coded for AccountError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        match self {
            AccountError::KdfParams | AccountError::Malformed => ErrorCode::InvalidInput,
            AccountError::UnknownVersion(_) => ErrorCode::InvalidInput,
            AccountError::Unwrap => ErrorCode::Integrity,
            AccountError::BadSignature => ErrorCode::Unauthorized,
        }
    }
}

/// The Argon2id output: the one secret a password gives.
pub struct PasswordKey(Zeroizing<[u8; 32]>);

/// Runs Argon2id over the password. Slow on purpose.
pub fn derive_password_key(
    password: &str,
    salt: &[u8; SALT_LEN],
    kdf: &KdfParams,
) -> Result<PasswordKey, AccountError> {
    kdf.check()?;
    let params = argon2::Params::new(kdf.mem_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|_| AccountError::KdfParams)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon.hash_password_into(password.as_bytes(), salt, out.as_mut()).map_err(|_| AccountError::KdfParams)?;
    Ok(PasswordKey(out))
}

impl PasswordKey {
    /// Wraps raw bytes (test vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PasswordKey(Zeroizing::new(bytes))
    }

    /// The Ed25519 login key.
    pub fn login_key(&self) -> LoginKey {
        let seed = hkdf32(self.0.as_ref(), LABEL_LOGIN_KEY);
        LoginKey(SigningKey::from_bytes(&seed))
    }

    /// The key that wraps the root secret.
    pub fn wrap_key(&self) -> WrapKey {
        WrapKey(hkdf32(self.0.as_ref(), LABEL_WRAP_KEY))
    }
}

/// What a login signature binds (SPEC.md §3.3): the accelerator as the device
/// reached it, the challenge it handed out, and the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginChallenge<'a> {
    /// The accelerator's origin as the device sees it (`scheme://host[:port]`, the
    /// WHATWG URL serialisation): a server relaying another server's challenge gets
    /// a signature for its own origin, which the other refuses.
    pub origin: &'a str,
    /// The challenge's id, as the accelerator named it.
    pub challenge_id: &'a str,
    /// The username signing in.
    pub username: &'a str,
    /// The challenge's random bytes.
    pub challenge: &'a [u8],
}

/// An origin in the URL standard's form (SPEC.md §3.3, what a login signature binds): lower-case `scheme://host[:port]`, the
/// scheme's default port left out, no path. `None` if `text` is not an http(s) origin.
pub fn canonical_origin(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = text.split_once("://")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let host = rest.strip_suffix(default_port).unwrap_or(rest);
    Some(format!("{scheme}://{host}"))
}

/// The message a login key signs:
/// label ‖ lp(origin) ‖ lp(challenge_id) ‖ lp(username) ‖ challenge.
pub fn login_message(login: &LoginChallenge<'_>) -> Vec<u8> {
    let mut msg = LABEL_LOGIN_SIGNATURE.to_vec();
    push_lp(&mut msg, login.origin.as_bytes());
    push_lp(&mut msg, login.challenge_id.as_bytes());
    push_lp(&mut msg, login.username.as_bytes());
    msg.extend_from_slice(login.challenge);
    msg
}

/// The Ed25519 key that proves knowledge of the password to the accelerator.
pub struct LoginKey(SigningKey);

impl LoginKey {
    /// The public half, which the accelerator stores.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs a login challenge.
    pub fn sign_challenge(&self, login: &LoginChallenge<'_>) -> [u8; 64] {
        self.0.sign(&login_message(login)).to_bytes()
    }
}

/// Checks a login signature (the accelerator's side).
pub fn verify_login(
    public_key: &[u8; 32],
    login: &LoginChallenge<'_>,
    signature: &[u8; 64],
) -> Result<(), AccountError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| AccountError::BadSignature)?;
    key.verify_strict(&login_message(login), &Signature::from_bytes(signature)).map_err(|_| AccountError::BadSignature)
}

/// Domain prefix of what a login key signs to publish the account's X25519 key.
pub const LABEL_KEY_PUBLICATION: &[u8] = b"coffer/v1/key-publication";

/// What a login key signs to publish the account's X25519 public key (SPEC.md §3.6):
/// `LABEL_KEY_PUBLICATION ‖ login_message(challenge) ‖ user_public_key`.
pub fn publication_message(login: &LoginChallenge<'_>, user_public_key: &[u8; 32]) -> Vec<u8> {
    let mut msg = LABEL_KEY_PUBLICATION.to_vec();
    msg.extend(login_message(login));
    msg.extend_from_slice(user_public_key);
    msg
}

impl LoginKey {
    /// Signs the publication of the account's X25519 public key.
    pub fn sign_publication(&self, login: &LoginChallenge<'_>, user_public_key: &[u8; 32]) -> [u8; 64] {
        self.0.sign(&publication_message(login, user_public_key)).to_bytes()
    }
}

/// Checks a publication signature (the accelerator's side), strictly as a login.
pub fn verify_publication(
    public_key: &[u8; 32],
    login: &LoginChallenge<'_>,
    user_public_key: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), AccountError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| AccountError::BadSignature)?;
    key.verify_strict(&publication_message(login, user_public_key), &Signature::from_bytes(signature))
        .map_err(|_| AccountError::BadSignature)
}

/// Checks that 32 bytes are a usable Ed25519 public key (at sign-up).
pub fn check_public_key(public_key: &[u8; 32]) -> Result<(), AccountError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| AccountError::BadSignature)?;
    if key.is_weak() { Err(AccountError::BadSignature) } else { Ok(()) }
}

/// The key that wraps the root secret.
pub struct WrapKey(Zeroizing<[u8; 32]>);

fn wrapped_root_aad(username: &str) -> Vec<u8> {
    let mut aad = LABEL_WRAPPED_ROOT.to_vec();
    push_lp(&mut aad, username.as_bytes());
    aad
}

impl WrapKey {
    /// Seals the root secret: version ‖ nonce ‖ AES-256-GCM(root), AAD binding the username.
    pub fn wrap(&self, root: &RootSecret, username: &str, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = vec![WRAPPED_ROOT_VERSION];
        out.extend_from_slice(&nonce);
        out.extend(seal(&self.0, &nonce, &wrapped_root_aad(username), root.0.as_ref()));
        out
    }

    /// Opens a wrapped root secret.
    pub fn unwrap(&self, username: &str, wrapped: &[u8]) -> Result<RootSecret, AccountError> {
        let (&version, rest) = wrapped.split_first().ok_or(AccountError::Malformed)?;
        if version != WRAPPED_ROOT_VERSION {
            return Err(AccountError::UnknownVersion(version));
        }
        if wrapped.len() != WRAPPED_ROOT_LEN {
            return Err(AccountError::Malformed);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let plain =
            Zeroizing::new(open(&self.0, &nonce, &wrapped_root_aad(username), sealed).ok_or(AccountError::Unwrap)?);
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| AccountError::Malformed)?;
        Ok(RootSecret::from_bytes(bytes))
    }
}

/// The account's root secret: 32 random bytes, from which every data key derives.
#[derive(Clone)]
pub struct RootSecret(Zeroizing<[u8; 32]>);

impl RootSecret {
    /// Takes 32 random bytes (the caller draws them).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RootSecret(Zeroizing::new(bytes))
    }

    /// The raw bytes (to remember a session on this device).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams { mem_kib: KdfParams::MIN_MEM_KIB, iterations: 1, ..KdfParams::default() }
    }

    #[test]
    fn a_publication_signature_binds_the_key_and_is_no_login() {
        let key = PasswordKey::from_bytes([3; 32]).login_key();
        let login =
            LoginChallenge { origin: "https://c.example", challenge_id: "c1", username: "ada", challenge: &[7; 32] };
        let signature = key.sign_publication(&login, &[1; 32]);
        verify_publication(&key.public_key(), &login, &[1; 32], &signature).unwrap();
        assert_eq!(
            verify_publication(&key.public_key(), &login, &[2; 32], &signature),
            Err(AccountError::BadSignature)
        );
        assert_eq!(verify_login(&key.public_key(), &login, &signature), Err(AccountError::BadSignature));
        let as_login = key.sign_challenge(&login);
        assert_eq!(verify_publication(&key.public_key(), &login, &[1; 32], &as_login), Err(AccountError::BadSignature));
    }

    #[test]
    fn origins_take_the_url_standards_form() {
        assert_eq!(canonical_origin("HTTPS://Coffer.Example/").as_deref(), Some("https://coffer.example"));
        assert_eq!(canonical_origin("https://coffer.example:443").as_deref(), Some("https://coffer.example"));
        assert_eq!(canonical_origin("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(canonical_origin("http://h:80").as_deref(), Some("http://h"));
        for bad in ["coffer.example", "ftp://x", "https://", "https://x/app", "https://u@x", "https://x?q"] {
            assert_eq!(canonical_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn login_round_trip_and_forgery() {
        let pwk = derive_password_key("correct horse", &[7; 16], &fast()).unwrap();
        let login = pwk.login_key();
        let signed =
            LoginChallenge { origin: "https://a.example", challenge_id: "c1", username: "ada", challenge: &[1; 32] };
        let sig = login.sign_challenge(&signed);
        verify_login(&login.public_key(), &signed, &sig).unwrap();
        for forged in [
            LoginChallenge { username: "bob", ..signed },
            LoginChallenge { challenge: &[2; 32], ..signed },
            LoginChallenge { origin: "https://relay.example", ..signed },
            LoginChallenge { challenge_id: "c2", ..signed },
        ] {
            assert_eq!(verify_login(&login.public_key(), &forged, &sig), Err(AccountError::BadSignature));
        }
        let other = derive_password_key("wrong", &[7; 16], &fast()).unwrap().login_key();
        assert_eq!(verify_login(&other.public_key(), &signed, &sig), Err(AccountError::BadSignature));
    }

    #[test]
    fn wrap_round_trip_and_wrong_password() {
        let root = RootSecret::from_bytes([9; 32]);
        let wrap = derive_password_key("pw", &[1; 16], &fast()).unwrap().wrap_key();
        let wrapped = wrap.wrap(&root, "ada", [3; 12]);
        assert_eq!(wrapped.len(), WRAPPED_ROOT_LEN);
        assert_eq!(wrap.unwrap("ada", &wrapped).unwrap().as_bytes(), root.as_bytes());
        assert_eq!(wrap.unwrap("eve", &wrapped).unwrap_err(), AccountError::Unwrap);
        let wrong = derive_password_key("pw2", &[1; 16], &fast()).unwrap().wrap_key();
        assert_eq!(wrong.unwrap("ada", &wrapped).unwrap_err(), AccountError::Unwrap);
        let mut v2 = wrapped.clone();
        v2[0] = 2;
        assert_eq!(wrap.unwrap("ada", &v2).unwrap_err(), AccountError::UnknownVersion(2));
        assert_eq!(wrap.unwrap("ada", &wrapped[..40]).unwrap_err(), AccountError::Malformed);
    }

    #[test]
    fn weak_params_refused() {
        let weak = KdfParams { mem_kib: 64, ..KdfParams::default() };
        assert!(matches!(derive_password_key("pw", &[0; 16], &weak), Err(AccountError::KdfParams)));
    }
}
