//! Each user's X25519 key pair (SPEC.md §3.6) and what is sealed to it (§3.7). The
//! pair derives from the account's root secret, so every device of the user holds
//! it without storing anything more; the public key is what others seal to — a
//! space's new key, when the space rotates it — with the accelerator carrying only
//! ciphertext.

use curve25519_dalek::montgomery::MontgomeryPoint;
use zeroize::Zeroizing;

use crate::account::RootSecret;
use crate::primitives::{NONCE_LEN, hkdf32, open, push_lp, seal};
use crate::{Coded, ErrorCode};

/// HKDF label of the user's X25519 secret.
pub const LABEL_USER_KEY: &[u8] = b"coffer/v1/user-x25519";
/// HKDF label of the key a sealed-to message is sealed under, and its AAD's prefix.
pub const LABEL_SEALED_TO: &[u8] = b"coffer/v1/sealed-to";
/// First byte of every sealed-to message.
pub const SEALED_TO_VERSION: u8 = 1;
/// Bytes of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// HKDF label of the key a proof of the root is made under, and its message's prefix.
pub const LABEL_ROOT_PROOF: &[u8] = b"coffer/v1/root-proof";
/// HKDF label of the accelerator's X25519 secret, derived from its server secret.
pub const LABEL_SERVER_KEY: &[u8] = b"coffer/v1/server-x25519";

/// Why a public key or a sealed-to message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A public key of small order: anything sealed to it could be opened by anyone.
    #[error("a user's public key is not a usable X25519 key (small order)")]
    WeakKey,
    /// A first byte this version does not know.
    #[error("a message sealed to this user is of an unknown format (version {0})")]
    UnknownVersion(u8),
    /// Altered, cut short, sealed to someone else or for another context.
    #[error("a message sealed to this user failed its integrity check (altered, or not for this user or purpose)")]
    Decrypt,
}

impl Coded for IdentityError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        ErrorCode::Integrity
    }
}

/// A user's X25519 key pair.
pub struct UserKeys {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; PUBLIC_KEY_LEN],
}

impl UserKeys {
    /// Derives the pair from the account's root secret.
    pub fn derive(root: &RootSecret) -> Self {
        let secret = hkdf32(root.as_bytes(), LABEL_USER_KEY);
        let public = MontgomeryPoint::mul_base_clamped(*secret).to_bytes();
        UserKeys { secret, public }
    }

    /// The public key, published with the account.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// Opens a message sealed to this user for `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let (&version, rest) = sealed.split_first().ok_or(IdentityError::Decrypt)?;
        if version != SEALED_TO_VERSION {
            return Err(IdentityError::UnknownVersion(version));
        }
        let (ephemeral, body) = rest.split_at_checked(PUBLIC_KEY_LEN).ok_or(IdentityError::Decrypt)?;
        let ephemeral: [u8; PUBLIC_KEY_LEN] = ephemeral.try_into().expect("split at PUBLIC_KEY_LEN");
        let shared = shared_secret(&ephemeral, &self.secret).ok_or(IdentityError::Decrypt)?;
        let key = message_key(&shared, &ephemeral, &self.public);
        open(&key, &[0; NONCE_LEN], &aad(context), body).ok_or(IdentityError::Decrypt)
    }
}

/// The accelerator's X25519 key pair, derived from its server secret (every
/// instance of one deployment shares it): what proofs of the root are made to.
pub struct ServerKeys {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; PUBLIC_KEY_LEN],
}

impl ServerKeys {
    /// Derives the pair from the server secret.
    pub fn derive(server_secret: &[u8; 32]) -> Self {
        let secret = hkdf32(server_secret, LABEL_SERVER_KEY);
        let public = MontgomeryPoint::mul_base_clamped(*secret).to_bytes();
        ServerKeys { secret, public }
    }

    /// The public key, handed out with every challenge.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.public
    }

    /// Checks a proof of the root (§3.9) by the user whose published key is
    /// `user_public`, for `challenge`. Constant time.
    pub fn check_root_proof(
        &self,
        user_public: &[u8; PUBLIC_KEY_LEN],
        challenge: &crate::account::LoginChallenge<'_>,
        proof: &[u8],
    ) -> bool {
        let Some(shared) = shared_secret(user_public, &self.secret) else { return false };
        let expected = proof_of(&shared, user_public, &self.public, challenge);
        subtle::ConstantTimeEq::ct_eq(&expected[..], proof).into()
    }
}

/// `HMAC-SHA256(derive(shared ‖ user_public ‖ server_public, LABEL_ROOT_PROOF),
/// LABEL_ROOT_PROOF ‖ login_message(challenge))`.
fn proof_of(
    shared: &[u8; 32],
    user_public: &[u8; PUBLIC_KEY_LEN],
    server_public: &[u8; PUBLIC_KEY_LEN],
    challenge: &crate::account::LoginChallenge<'_>,
) -> [u8; 32] {
    use hmac::{Hmac, KeyInit, Mac};
    let mut ikm = Zeroizing::new(Vec::with_capacity(96));
    ikm.extend_from_slice(shared);
    ikm.extend_from_slice(user_public);
    ikm.extend_from_slice(server_public);
    let key = hkdf32(&ikm, LABEL_ROOT_PROOF);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key.as_ref()).expect("HMAC takes keys of any length");
    mac.update(LABEL_ROOT_PROOF);
    mac.update(&crate::account::login_message(challenge));
    mac.finalize().into_bytes().into()
}

impl UserKeys {
    /// Proves to the accelerator whose public key is `server_public` that this device
    /// holds the account's root secret, for one challenge (§3.9): what a change to
    /// how the account is recovered requires, so that a session token alone cannot.
    pub fn root_proof(
        &self,
        server_public: &[u8; PUBLIC_KEY_LEN],
        challenge: &crate::account::LoginChallenge<'_>,
    ) -> Result<[u8; 32], IdentityError> {
        let shared = shared_secret(server_public, &self.secret).ok_or(IdentityError::WeakKey)?;
        Ok(proof_of(&shared, &self.public, server_public, challenge))
    }
}

/// Refuses a public key of small order (all of whose shared secrets are zero).
pub fn check_public_key(public: &[u8; PUBLIC_KEY_LEN]) -> Result<(), IdentityError> {
    shared_secret(public, &[1; 32]).map(drop).ok_or(IdentityError::WeakKey)
}

/// Seals `plaintext` to the user whose public key is `recipient`, for `context` (what
/// it is and where it belongs, bound into the AAD). `ephemeral` must be 32 fresh
/// random bytes: the message's one-time key pair.
pub fn seal_to(
    recipient: &[u8; PUBLIC_KEY_LEN],
    context: &[u8],
    plaintext: &[u8],
    ephemeral: [u8; 32],
) -> Result<Vec<u8>, IdentityError> {
    let ephemeral = Zeroizing::new(ephemeral);
    let ephemeral_public = MontgomeryPoint::mul_base_clamped(*ephemeral).to_bytes();
    let shared = shared_secret(recipient, &ephemeral).ok_or(IdentityError::WeakKey)?;
    let key = message_key(&shared, &ephemeral_public, recipient);
    let mut out = vec![SEALED_TO_VERSION];
    out.extend_from_slice(&ephemeral_public);
    // The key is new with every message (a fresh ephemeral pair), so one nonce serves.
    out.extend(seal(&key, &[0; NONCE_LEN], &aad(context), plaintext));
    Ok(out)
}

/// X25519(`secret`, `public`), or `None` if it is all zeros (`public` of small order).
fn shared_secret(public: &[u8; PUBLIC_KEY_LEN], secret: &[u8; 32]) -> Option<Zeroizing<[u8; 32]>> {
    let shared = Zeroizing::new(MontgomeryPoint(*public).mul_clamped(*secret).to_bytes());
    (shared.iter().any(|&b| b != 0)).then_some(shared)
}

/// `derive(shared ‖ ephemeral_public ‖ recipient_public, LABEL_SEALED_TO)`.
fn message_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(96));
    ikm.extend_from_slice(shared);
    ikm.extend_from_slice(ephemeral);
    ikm.extend_from_slice(recipient);
    hkdf32(&ikm, LABEL_SEALED_TO)
}

/// `LABEL_SEALED_TO ‖ lp(context)`.
fn aad(context: &[u8]) -> Vec<u8> {
    let mut aad = LABEL_SEALED_TO.to_vec();
    push_lp(&mut aad, context);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> UserKeys {
        UserKeys::derive(&RootSecret::from_bytes([byte; 32]))
    }

    #[test]
    fn a_message_opens_only_for_its_user_and_context() {
        let (ada, bob) = (keys(1), keys(2));
        let sealed = seal_to(&ada.public_key(), b"space s1, epoch 2", b"new space key", [7; 32]).unwrap();
        assert_eq!(ada.open(b"space s1, epoch 2", &sealed).unwrap(), b"new space key");
        assert_eq!(bob.open(b"space s1, epoch 2", &sealed), Err(IdentityError::Decrypt), "another user");
        assert_eq!(ada.open(b"space s1, epoch 3", &sealed), Err(IdentityError::Decrypt), "another context");
        for at in [1, 20, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[at] ^= 1;
            assert_eq!(ada.open(b"space s1, epoch 2", &altered), Err(IdentityError::Decrypt), "byte {at} altered");
        }
        let mut version = sealed.clone();
        version[0] = 2;
        assert_eq!(ada.open(b"space s1, epoch 2", &version), Err(IdentityError::UnknownVersion(2)));
        assert_eq!(ada.open(b"space s1, epoch 2", &sealed[..30]), Err(IdentityError::Decrypt));
        assert_eq!(ada.open(b"space s1, epoch 2", &[]), Err(IdentityError::Decrypt));
    }

    #[test]
    fn the_pair_is_the_accounts_own() {
        assert_eq!(keys(1).public_key(), keys(1).public_key());
        assert_ne!(keys(1).public_key(), keys(2).public_key());
        assert_eq!(check_public_key(&keys(1).public_key()), Ok(()));
    }

    #[test]
    fn a_root_proof_checks_only_for_its_user_and_challenge() {
        let (ada, bob) = (keys(1), keys(2));
        let server = ServerKeys::derive(&[9; 32]);
        let login = |id| crate::account::LoginChallenge {
            origin: "https://coffer.example",
            challenge_id: id,
            username: "ada",
            challenge: &[5; 32],
        };
        let proof = ada.root_proof(&server.public_key(), &login("c1")).unwrap();
        assert!(server.check_root_proof(&ada.public_key(), &login("c1"), &proof));
        assert!(!server.check_root_proof(&ada.public_key(), &login("c2"), &proof), "another challenge");
        assert!(!server.check_root_proof(&bob.public_key(), &login("c1"), &proof), "another user's key");
        let by_bob = bob.root_proof(&server.public_key(), &login("c1")).unwrap();
        assert!(!server.check_root_proof(&ada.public_key(), &login("c1"), &by_bob), "made by another user");
        let other_server = ServerKeys::derive(&[8; 32]);
        assert!(!other_server.check_root_proof(&ada.public_key(), &login("c1"), &proof), "another accelerator");
        assert!(!server.check_root_proof(&ada.public_key(), &login("c1"), &proof[..31]));
        assert!(!server.check_root_proof(&[0; 32], &login("c1"), &[0; 32]), "a small-order key proves nothing");
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The points of order 1, 2, 4 and 8 on Curve25519 (and their non-canonical twins).
        let mut order_8 = [0u8; 32];
        order_8[..8].copy_from_slice(&[0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae]);
        order_8[8..16].copy_from_slice(&[0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a]);
        order_8[16..24].copy_from_slice(&[0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd]);
        order_8[24..].copy_from_slice(&[0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00]);
        let mut one = [0u8; 32];
        one[0] = 1;
        for weak in [[0u8; 32], one, order_8] {
            assert_eq!(check_public_key(&weak), Err(IdentityError::WeakKey));
            assert_eq!(seal_to(&weak, b"c", b"secret", [7; 32]), Err(IdentityError::WeakKey));
        }
    }
}
