//! The server secret: 32 random bytes created once per data directory. It keys the
//! made-up salts of unknown usernames and the stand-in login key their logins are
//! checked against, so an unknown name answers like a known one, stably across
//! restarts.

use std::io::Write as _;
use std::path::Path;

use coffer_core::account::{self, SALT_LEN};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The server secret's file name inside the data directory.
pub const SECRET_FILE: &str = "server-secret";

/// 32 random bytes created once per data directory; keys the made-up salts of
/// unknown usernames, so they are stable across restarts and unguessable.
pub struct ServerSecret {
    /// The HMAC key; never leaves this process.
    key: [u8; 32],
    /// The public half of a login key nobody holds, derived from the secret: logins
    /// for unknown usernames are checked against it, so they cost what a wrong
    /// password costs.
    pub stand_in_key: [u8; 32],
}

impl ServerSecret {
    /// Reads the secret from `data_dir`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(SECRET_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
                    std::io::Error::other(format!("{} is not 32 bytes; remove it to make a new one", path.display()))
                })?;
                return Ok(ServerSecret::from_key(bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
        // Written beside, then renamed into place: a crash never leaves a short file.
        let tmp = data_dir.join(format!("{SECRET_FILE}.tmp"));
        let mut file = crate::store::private_file_options().truncate(true).open(&tmp)?;
        file.write_all(&secret)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(ServerSecret::from_key(secret))
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
