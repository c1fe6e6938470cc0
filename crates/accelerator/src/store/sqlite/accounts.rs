//! Accounts, sessions and sign-in challenges in SQLite.

use super::*;

const USER_COLUMNS: &str = "user_id, username, salt, kdf_alg, kdf_mem_kib, kdf_iterations, kdf_parallelism, \
                            login_public_key, wrapped_root, kv_seq, user_public_key, recovery_public_key, \
                            recovery_wrapped_root";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let recovery_key: Option<[u8; 32]> = row.get(11)?;
    let recovery_root: Option<Vec<u8>> = row.get(12)?;
    Ok(User {
        user_id: row.get(0)?,
        username: row.get(1)?,
        credentials: Credentials {
            salt: row.get(2)?,
            kdf: KdfParams {
                alg: row.get(3)?,
                mem_kib: row.get(4)?,
                iterations: row.get(5)?,
                parallelism: row.get(6)?,
            },
            login_public_key: row.get(7)?,
            wrapped_root: row.get(8)?,
        },
        kv_seq: uint(row.get(9)?),
        user_public_key: row.get(10)?,
        // The schema keeps both or neither.
        recovery: recovery_key
            .zip(recovery_root)
            .map(|(public_key, wrapped_root)| Recovery { public_key, wrapped_root }),
    })
}

impl Db {
    pub(super) fn server_secret(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        let candidate = *candidate;
        self.write(move |tx| {
            tx.exec("INSERT OR IGNORE INTO server_secret (only_row, secret) VALUES (1, ?1)", [candidate.as_slice()])?;
            Ok(tx.row("SELECT secret FROM server_secret", [], |r| r.get(0))?)
        })
    }

    pub(super) fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.to_owned();
        self.write(move |tx| {
            let user = &user;
            let c = &user.credentials;
            let recovery = user.recovery.as_ref();
            let result = tx.exec(
                &format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11, ?12)"
                ),
                params![
                    user.user_id,
                    user.username,
                    c.salt,
                    c.kdf.alg,
                    c.kdf.mem_kib,
                    c.kdf.iterations,
                    c.kdf.parallelism,
                    c.login_public_key,
                    c.wrapped_root,
                    user.user_public_key,
                    recovery.map(|r| r.public_key),
                    recovery.map(|r| &r.wrapped_root)
                ],
            );
            match result {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::UsernameTaken)
                }
                Err(e) => Err(backend(e)),
            }
        })
    }

    pub(super) fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.reader()
            .row(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"), [username], user_from_row)
            .optional()
            .map_err(backend)
    }

    pub(super) fn publish_key(&self, user_id: &str, public_key: &[u8; 32]) -> Result<(), StoreError> {
        let (user_id, public_key) = (user_id.to_owned(), *public_key);
        self.write(move |tx| {
            let published: Option<[u8; 32]> =
                tx.row("SELECT user_public_key FROM users WHERE user_id = ?1", [&user_id], |r| r.get(0))?;
            match published {
                None => {
                    tx.exec("UPDATE users SET user_public_key = ?2 WHERE user_id = ?1", params![user_id, public_key])?;
                    Ok(())
                }
                Some(key) if key == public_key => Ok(()),
                Some(_) => Err(StoreError::KeyPublished),
            }
        })
    }

    pub(super) fn replace_credentials(
        &self,
        user_id: &str,
        by: &Authorised,
        new: &Credentials,
        keep_session: Option<&[u8; 32]>,
    ) -> Result<bool, StoreError> {
        let (user_id, by, new, keep_session) = (user_id.to_owned(), *by, new.to_owned(), keep_session.copied());
        self.write(move |tx| {
            let (column, key) = by.column_and_key();
            let changed = tx
                .execute(
                    &format!(
                        "UPDATE users SET salt = ?3, kdf_alg = ?4, kdf_mem_kib = ?5, kdf_iterations = ?6,
                            kdf_parallelism = ?7, login_public_key = ?8, wrapped_root = ?9
                         WHERE user_id = ?1 AND {column} = ?2"
                    ),
                    params![
                        user_id,
                        key,
                        new.salt,
                        new.kdf.alg,
                        new.kdf.mem_kib,
                        new.kdf.iterations,
                        new.kdf.parallelism,
                        new.login_public_key,
                        new.wrapped_root
                    ],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Ok(false);
            }
            match keep_session {
                Some(keep) => tx
                    .exec("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2", params![user_id, keep])
                    .map_err(backend)?,
                None => tx.exec("DELETE FROM sessions WHERE user_id = ?1", [&user_id]).map_err(backend)?,
            };
            Ok(true)
        })
    }

    pub(super) fn set_recovery(&self, user_id: &str, recovery: &Recovery) -> Result<(), StoreError> {
        let (user_id, recovery) = (user_id.to_owned(), recovery.to_owned());
        self.write(move |tx| {
            tx.exec(
                "UPDATE users SET recovery_public_key = ?2, recovery_wrapped_root = ?3 WHERE user_id = ?1",
                params![user_id, recovery.public_key, recovery.wrapped_root],
            )?;
            Ok(())
        })
    }

    pub(super) fn create_session(
        &self,
        token_hash: &[u8; 32],
        user_id: &str,
        expires_at_ms: u64,
        now_ms: u64,
        keep_at_most: usize,
    ) -> Result<(), StoreError> {
        let (token_hash, user_id) = (token_hash.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let (token_hash, user_id) = (&token_hash, &user_id);
            tx.exec("DELETE FROM sessions WHERE expires_at_ms <= ?1", [int(now_ms)]).map_err(backend)?;
            tx.exec(
                "INSERT INTO sessions (token_hash, user_id, expires_at_ms) VALUES (?1, ?2, ?3)",
                params![token_hash, user_id, int(expires_at_ms)],
            )
            .map_err(backend)?;
            // Rowids grow with each insert, so the smallest are the oldest sessions.
            tx.exec(
                "DELETE FROM sessions WHERE user_id = ?1 AND rowid NOT IN
               (SELECT rowid FROM sessions WHERE user_id = ?1 ORDER BY rowid DESC LIMIT ?2)",
                params![user_id, int(keep_at_most.max(1) as u64)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    pub(super) fn session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<Option<Session>, StoreError> {
        self.reader()
            .row(
                "SELECT s.user_id, u.username, u.kv_seq, s.expires_at_ms, u.user_public_key
                 FROM sessions s JOIN users u ON u.user_id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at_ms > ?2",
                params![token_hash, int(now_ms)],
                |r| {
                    Ok(Session {
                        user_id: r.get(0)?,
                        username: r.get(1)?,
                        kv_seq: uint(r.get(2)?),
                        expires_at_ms: uint(r.get(3)?),
                        user_public_key: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    pub(super) fn delete_session(&self, token_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.write(move |tx| {
            let token_hash = &token_hash;
            tx.row("DELETE FROM sessions WHERE token_hash = ?1 RETURNING user_id", [token_hash], |r| r.get(0))
                .optional()
                .map_err(backend)
        })
    }

    pub(super) fn create_challenge(&self, challenge: &Challenge, now_ms: u64) -> Result<(), StoreError> {
        let challenge = challenge.to_owned();
        self.write(move |tx| {
            let challenge = &challenge;
            tx.exec("DELETE FROM challenges WHERE expires_at_ms <= ?1", [int(now_ms)]).map_err(backend)?;
            tx.exec(
                "INSERT INTO challenges (challenge_id, username, challenge, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![challenge.challenge_id, challenge.username, challenge.challenge, int(challenge.expires_at_ms)],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    pub(super) fn take_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>, StoreError> {
        let challenge_id = challenge_id.to_owned();
        self.write(move |tx| {
            let challenge_id = &challenge_id;
            tx.row(
                "DELETE FROM challenges WHERE challenge_id = ?1
                 RETURNING challenge_id, username, challenge, expires_at_ms",
                [challenge_id],
                |r| {
                    Ok(Challenge {
                        challenge_id: r.get(0)?,
                        username: r.get(1)?,
                        challenge: r.get(2)?,
                        expires_at_ms: uint(r.get(3)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
    }

    pub(super) fn used_bytes(&self, user_id: &str) -> Result<u64, StoreError> {
        let used = self
            .reader()
            .query_row("SELECT used_bytes FROM users WHERE user_id = ?1", [user_id], |r| r.get(0))
            .optional()?;
        Ok(used.map_or(0, uint))
    }
}

#[async_trait]
impl Accounts for SqliteRecords {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.run(move |db| db.create_user(&user)).await
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let username = username.to_owned();
        self.run(move |db| db.user_by_name(&username)).await
    }

    async fn publish_key(&self, user_id: &str, public_key: &[u8; 32]) -> Result<(), StoreError> {
        let (user_id, public_key) = (user_id.to_owned(), *public_key);
        self.run(move |db| db.publish_key(&user_id, &public_key)).await
    }

    async fn replace_credentials(
        &self,
        user_id: &str,
        by: &Authorised,
        new: &Credentials,
        keep_session: Option<&[u8; 32]>,
    ) -> Result<bool, StoreError> {
        let (user_id, by, new, keep_session) = (user_id.to_owned(), *by, new.clone(), keep_session.copied());
        self.run(move |db| db.replace_credentials(&user_id, &by, &new, keep_session.as_ref())).await
    }

    async fn set_recovery(&self, user_id: &str, recovery: &Recovery) -> Result<(), StoreError> {
        let (user_id, recovery) = (user_id.to_owned(), recovery.clone());
        self.run(move |db| db.set_recovery(&user_id, &recovery)).await
    }

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        user_id: &str,
        expires_at_ms: u64,
        now_ms: u64,
        keep_at_most: usize,
    ) -> Result<(), StoreError> {
        let (token_hash, user_id) = (*token_hash, user_id.to_owned());
        self.run(move |db| db.create_session(&token_hash, &user_id, expires_at_ms, now_ms, keep_at_most)).await
    }

    async fn session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<Option<Session>, StoreError> {
        let token_hash = *token_hash;
        self.run(move |db| db.session(&token_hash, now_ms)).await
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        let token_hash = *token_hash;
        self.run(move |db| db.delete_session(&token_hash)).await
    }

    async fn create_challenge(&self, challenge: &Challenge, now_ms: u64) -> Result<(), StoreError> {
        let challenge = challenge.clone();
        self.run(move |db| db.create_challenge(&challenge, now_ms)).await
    }

    async fn take_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>, StoreError> {
        let challenge_id = challenge_id.to_owned();
        self.run(move |db| db.take_challenge(&challenge_id)).await
    }

    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        self.run(move |db| db.server_secret(&candidate)).await
    }

    async fn used_bytes(&self, user_id: &str) -> Result<u64, StoreError> {
        let user_id = user_id.to_owned();
        self.run(move |db| db.used_bytes(&user_id)).await
    }
}
