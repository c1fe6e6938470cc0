//! The server secret: 32 random bytes created once and kept in the records, so
//! every accelerator on them shares it. It keys the made-up salts of unknown
//! usernames, the made-up recovery wrapped roots of usernames without a recovery
//! code, and the stand-in login key their logins are checked against, so an unknown
//! name answers like a known one, stably across restarts and instances. The
//! accelerator's X25519 key pair (SPEC.md §3.9), to which a device proves it holds an
//! account's root secret, derives from it too, so every instance has the same pair.

use std::path::Path;

use coffer_core::account::{self, SALT_LEN, WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION};
use coffer_core::identity::ServerKeys;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::store::Records;

/// What the blocks of a made-up recovery wrapped root are keyed with, before a
/// block counter and the username. It holds a space and a colon, which no username
/// does, so no block is ever a made-up salt (keyed with the username alone).
const LABEL_MADE_UP_RECOVERY_ROOT: &[u8] = b"coffer accelerator: made-up recovery wrapped root";

/// Where embedded accelerators before the secret moved into the records kept it,
/// inside the data directory; read once, to keep it.
pub const SECRET_FILE: &str = "server-secret";

/// 32 random bytes created once per deployment; keys the made-up salts of unknown
/// usernames and the made-up recovery wrapped roots, so they are stable across
/// restarts and unguessable, and gives the accelerator's X25519 key pair.
pub struct ServerSecret {
    /// The HMAC key; never leaves this process.
    key: [u8; 32],
    /// The public half of a login key nobody holds, derived from the secret: logins
    /// for unknown usernames are checked against it, so they cost what a wrong
    /// password costs.
    pub stand_in_key: [u8; 32],
    /// The accelerator's X25519 key pair (SPEC.md §3.9): its public half goes out
    /// with every login challenge, and the proof of the root that setting a
    /// recovery code needs is checked with its secret half. Derived from the secret,
    /// so every instance and every restart has the same pair.
    pub server_keys: ServerKeys,
}

impl ServerSecret {
    /// The secret the records keep ([`crate::store::Accounts::server_secret`]),
    /// stored at the first start: the one in the file `legacy` if an earlier
    /// version left one there, else fresh random bytes.
    pub async fn load(records: &dyn Records, legacy: Option<&Path>) -> std::io::Result<Self> {
        let candidate = match legacy.map(legacy_secret).transpose()?.flatten() {
            Some(kept) => kept,
            None => {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
                fresh
            }
        };
        let key = records.server_secret(candidate).await.map_err(std::io::Error::other)?;
        Ok(ServerSecret::from_key(key))
    }

    fn from_key(key: [u8; 32]) -> Self {
        let seed = Self::hmac(&key, b"coffer accelerator: stand-in login key");
        let stand_in_key = account::PasswordKey::from_bytes(seed).login_key().public_key();
        let server_keys = ServerKeys::derive(&key);
        ServerSecret { key, stand_in_key, server_keys }
    }

    fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The made-up salt for an unknown username: the first 16 bytes of
    /// HMAC-SHA256(secret, username).
    pub fn fake_salt(&self, username: &str) -> [u8; SALT_LEN] {
        let tag = Self::hmac(&self.key, username.as_bytes());
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&tag[..SALT_LEN]);
        salt
    }

    /// The made-up recovery wrapped root for a username without a recovery code (or
    /// an unknown one): shaped like a real one (SPEC.md §3.4: 61 bytes, version
    /// `0x01`, then what looks random), stable per username. The 60 bytes after the
    /// version are the start of HMAC-SHA256(secret, label ‖ n ‖ username) for the
    /// block counters n = 1, 2.
    pub fn fake_recovery_root(&self, username: &str) -> Vec<u8> {
        // Two blocks are enough.
        const _: () = assert!(1 + 2 * 32 >= WRAPPED_ROOT_LEN);
        let block = |n: u8| Self::hmac(&self.key, &[LABEL_MADE_UP_RECOVERY_ROOT, &[n], username.as_bytes()].concat());
        let mut wrapped = [&[WRAPPED_ROOT_VERSION][..], &block(1), &block(2)].concat();
        wrapped.truncate(WRAPPED_ROOT_LEN);
        wrapped
    }
}

/// The secret in the legacy file at `path`, if there is one.
pub(crate) fn legacy_secret(path: &Path) -> std::io::Result<Option<[u8; 32]>> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.try_into().map(Some).map_err(|_| {
            std::io::Error::other(format!("{} is not 32 bytes; remove it to make a new secret", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_up_recovery_root_is_shaped_like_a_real_one_and_stable_per_name() {
        let secret = ServerSecret::from_key([7; 32]);
        let ada = secret.fake_recovery_root("ada");
        assert_eq!((ada.len(), ada[0]), (WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION));
        assert_eq!(secret.fake_recovery_root("ada"), ada);
        assert_ne!(secret.fake_recovery_root("bob"), ada);
        assert_ne!(ServerSecret::from_key([8; 32]).fake_recovery_root("ada"), ada, "keyed by the secret");
        assert_ne!(ada[1..17], secret.fake_salt("ada"), "not the made-up salt");
    }

    #[test]
    fn the_server_key_pair_follows_the_secret() {
        let public = ServerSecret::from_key([7; 32]).server_keys.public_key();
        assert_eq!(ServerSecret::from_key([7; 32]).server_keys.public_key(), public);
        assert_ne!(ServerSecret::from_key([8; 32]).server_keys.public_key(), public);
        assert_eq!(coffer_core::identity::check_public_key(&public), Ok(()));
    }
}
