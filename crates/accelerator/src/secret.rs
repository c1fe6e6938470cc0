//! The server secret: 32 random bytes created once and kept in the records, so
//! every accelerator on them shares it. It keys the made-up salts of unknown
//! usernames and the stand-in login key their logins are checked against, so an
//! unknown name answers like a known one, stably across restarts and instances.

use std::path::Path;

use coffer_core::account::{self, SALT_LEN};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::store::Records;

/// Where embedded accelerators before the secret moved into the records kept it,
/// inside the data directory; read once, to keep it.
pub const SECRET_FILE: &str = "server-secret";

/// 32 random bytes created once per deployment; keys the made-up salts of unknown
/// usernames, so they are stable across restarts and unguessable.
pub struct ServerSecret {
    /// The HMAC key; never leaves this process.
    key: [u8; 32],
    /// The public half of a login key nobody holds, derived from the secret: logins
    /// for unknown usernames are checked against it, so they cost what a wrong
    /// password costs.
    pub stand_in_key: [u8; 32],
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
        ServerSecret { key, stand_in_key }
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
