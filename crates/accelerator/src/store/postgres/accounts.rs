//! Accounts: users, sessions, login challenges, and what each user stores (the
//! charges every other domain makes against a user's allowance).

use coffer_core::account::KdfParams;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::listen::wake_feeds;
use super::{Failure, PgRecords, bytes32, exec, int, one, retry, row, uint, unique_violation};
use crate::store::{
    Accounts, Authorised, Challenge, Credentials, Quota, Recovery, Session, StoreError, User, async_trait,
};

const USER_COLUMNS: &str = "user_id, username, salt, kdf_alg, kdf_mem_kib, kdf_iterations, kdf_parallelism, \
                            login_public_key, wrapped_root, kv_seq, user_public_key, recovery_public_key, \
                            recovery_wrapped_root";

/// Column `at` as 32 bytes or NULL.
pub(crate) fn optional_bytes32(row: &Row, at: usize) -> Result<Option<[u8; 32]>, Failure> {
    let bytes: Option<Vec<u8>> = row.try_get(at)?;
    bytes
        .map(|b| b.try_into().map_err(|_| Failure::Store(StoreError::Backend(format!("column {at} is not 32 bytes")))))
        .transpose()
}

/// A KDF parameter as stored (a `u32` in a BIGINT).
fn kdf_number(row: &Row, at: usize) -> Result<u32, Failure> {
    let n: i64 = row.try_get(at)?;
    u32::try_from(n).map_err(|_| Failure::Store(StoreError::Backend(format!("KDF parameter {n} out of range"))))
}

fn user_from_row(row: &Row) -> Result<User, Failure> {
    let salt: Vec<u8> = row.try_get(2)?;
    Ok(User {
        user_id: row.try_get(0)?,
        username: row.try_get(1)?,
        credentials: Credentials {
            salt: salt.try_into().map_err(|_| Failure::Store(StoreError::Backend("a salt is not 16 bytes".into())))?,
            kdf: KdfParams {
                alg: row.try_get(3)?,
                mem_kib: kdf_number(row, 4)?,
                iterations: kdf_number(row, 5)?,
                parallelism: kdf_number(row, 6)?,
            },
            login_public_key: bytes32(row, 7)?,
            wrapped_root: row.try_get(8)?,
        },
        kv_seq: uint(row.try_get(9)?),
        user_public_key: optional_bytes32(row, 10)?,
        // The schema keeps both or neither.
        recovery: optional_bytes32(row, 11)?
            .zip(row.try_get::<_, Option<Vec<u8>>>(12)?)
            .map(|(public_key, wrapped_root)| Recovery { public_key, wrapped_root }),
    })
}

/// Locks `user_id`'s row until the transaction ends, and returns the bytes they
/// store. Every write that charges a user, or adds to their change log or sessions,
/// takes this lock first: such writes of one user take turns, on every accelerator.
pub(crate) async fn lock_user(tx: &impl GenericClient, user_id: &str) -> Result<u64, Failure> {
    let found = row(tx, "SELECT used_bytes FROM users WHERE user_id = $1 FOR UPDATE", &[&user_id]).await?;
    let found = found.ok_or_else(|| Failure::Store(StoreError::Backend(format!("no user {user_id:?}"))))?;
    Ok(uint(found.try_get(0)?))
}

/// Adds `delta` bytes to what `user_id` stores, inside the caller's transaction,
/// holding their row's lock ([`lock_user`]) from the check to the commit. A growth
/// that would pass `allowance` is refused with nothing changed (a shrink never is).
pub(crate) async fn charge(tx: &impl GenericClient, user_id: &str, delta: i64, allowance: u64) -> Result<(), Failure> {
    let used = lock_user(tx, user_id).await?;
    let after = int(used).saturating_add(delta).max(0);
    if delta > 0 && uint(after) > allowance {
        return Err(
            StoreError::QuotaExceeded { limit: Quota::User, used, adding: uint(delta), quota: allowance }.into()
        );
    }
    exec(tx, "UPDATE users SET used_bytes = $2 WHERE user_id = $1", &[&user_id, &after]).await?;
    Ok(())
}

/// Gives `bytes` back to `user_id`: a refund, never refused.
pub(crate) async fn refund(tx: &impl GenericClient, user_id: &str, bytes: u64) -> Result<(), Failure> {
    charge(tx, user_id, -int(bytes), u64::MAX).await
}

/// Refunds each payer what the list says, one user at a time in a fixed order (so
/// two transactions refunding the same users never wait for each other in a circle).
pub(crate) async fn refund_all(tx: &impl GenericClient, mut payers: Vec<(String, u64)>) -> Result<(), Failure> {
    payers.sort();
    for group in payers.chunk_by(|a, b| a.0 == b.0) {
        refund(tx, &group[0].0, group.iter().map(|(_, bytes)| bytes).sum()).await?;
    }
    Ok(())
}

#[async_trait]
impl Accounts for PgRecords {
    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            exec(
                &client,
                "INSERT INTO server_secret (only_row, secret) VALUES (true, $1) ON CONFLICT (only_row) DO NOTHING",
                &[&candidate.as_slice()],
            )
            .await?;
            // A statement of its own: it sees the row whichever accelerator wrote it.
            let stored = one(&client, "SELECT secret FROM server_secret", &[]).await?;
            bytes32(&stored, 0)
        })
        .await
    }

    /// Creates an account; [`StoreError::UsernameTaken`] if the name exists.
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let c = &user.credentials;
        let (mem_kib, iterations, parallelism) =
            (i64::from(c.kdf.mem_kib), i64::from(c.kdf.iterations), i64::from(c.kdf.parallelism));
        let recovery = user.recovery.as_ref();
        retry(|| async move {
            let client = self.client().await?;
            let inserted = exec(
                &client,
                &format!(
                    "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12)"
                ),
                &[
                    &user.user_id,
                    &user.username,
                    &c.salt.as_slice(),
                    &c.kdf.alg,
                    &mem_kib,
                    &iterations,
                    &parallelism,
                    &c.login_public_key.as_slice(),
                    &c.wrapped_root,
                    &user.user_public_key.as_ref().map(|k| k.as_slice()),
                    &recovery.map(|r| r.public_key.as_slice()),
                    &recovery.map(|r| r.wrapped_root.as_slice()),
                ],
            )
            .await;
            match inserted {
                Err(failure) if unique_violation(&failure) => Err(StoreError::UsernameTaken.into()),
                Err(failure) => Err(failure),
                Ok(_) => Ok(()),
            }
        })
        .await
    }

    /// Finds an account by username.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
            row(&client, &sql, &[&username]).await?.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    /// Publishes the account's public key, if it has none: the same key again
    /// changes nothing, another one is [`StoreError::KeyPublished`]. Of two
    /// publishing at once, the second's update waits for the first and then finds
    /// a key there.
    async fn publish_key(&self, user_id: &str, public_key: &[u8; 32]) -> Result<(), StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            let stored = exec(
                &client,
                "UPDATE users SET user_public_key = $2 WHERE user_id = $1 AND user_public_key IS NULL",
                &[&user_id, &public_key.as_slice()],
            )
            .await?;
            if stored > 0 {
                return Ok(());
            }
            // A statement of its own: it sees the key whoever published it.
            let found = one(&client, "SELECT user_public_key FROM users WHERE user_id = $1", &[&user_id]).await?;
            match optional_bytes32(&found, 0)? {
                Some(key) if key == *public_key => Ok(()),
                _ => Err(StoreError::KeyPublished.into()),
            }
        })
        .await
    }

    async fn replace_credentials(
        &self,
        user_id: &str,
        by: &Authorised,
        new: &Credentials,
        keep_session: Option<&[u8; 32]>,
    ) -> Result<bool, StoreError> {
        let (mem_kib, iterations, parallelism) =
            (i64::from(new.kdf.mem_kib), i64::from(new.kdf.iterations), i64::from(new.kdf.parallelism));
        let (column, key) = by.column_and_key();
        let update = format!(
            "UPDATE users SET salt = $3, kdf_alg = $4, kdf_mem_kib = $5, kdf_iterations = $6,
                kdf_parallelism = $7, login_public_key = $8, wrapped_root = $9
             WHERE user_id = $1 AND {column} = $2"
        );
        let update = &update;
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // The UPDATE locks the row and checks the key again once it has it: of two
            // changes made with one key, one wins and the other finds it changed.
            let changed = exec(
                &tx,
                update,
                &[
                    &user_id,
                    &key.as_slice(),
                    &new.salt.as_slice(),
                    &new.kdf.alg,
                    &mem_kib,
                    &iterations,
                    &parallelism,
                    &new.login_public_key.as_slice(),
                    &new.wrapped_root,
                ],
            )
            .await?;
            if changed == 0 {
                return Ok(false);
            }
            match keep_session {
                Some(keep) => {
                    exec(
                        &tx,
                        "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2",
                        &[&user_id, &keep.as_slice()],
                    )
                    .await?
                }
                None => exec(&tx, "DELETE FROM sessions WHERE user_id = $1", &[&user_id]).await?,
            };
            // Feeds of the revoked sessions, on any accelerator, close.
            wake_feeds(&tx, user_id).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    /// Sets the account's recovery code, replacing any earlier one.
    async fn set_recovery(&self, user_id: &str, recovery: &Recovery) -> Result<(), StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            exec(
                &client,
                "UPDATE users SET recovery_public_key = $2, recovery_wrapped_root = $3 WHERE user_id = $1",
                &[&user_id, &recovery.public_key.as_slice(), &recovery.wrapped_root],
            )
            .await?;
            Ok(())
        })
        .await
    }

    /// Records a session under the hash of its token, dropping expired ones and,
    /// beyond the newest `keep_at_most` of the user's sessions, the oldest.
    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        user_id: &str,
        expires_at_ms: u64,
        now_ms: u64,
        keep_at_most: usize,
    ) -> Result<(), StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Sign-ins of one user take turns, so the cap counts every session.
            lock_user(&tx, user_id).await?;
            exec(&tx, "DELETE FROM sessions WHERE expires_at_ms <= $1", &[&int(now_ms)]).await?;
            exec(
                &tx,
                "INSERT INTO sessions (token_hash, user_id, expires_at_ms) VALUES ($1, $2, $3)",
                &[&token_hash.as_slice(), &user_id, &int(expires_at_ms)],
            )
            .await?;
            // n grows with each insert, so the smallest are the oldest sessions.
            let evicted = exec(
                &tx,
                "DELETE FROM sessions WHERE user_id = $1 AND n NOT IN
                    (SELECT n FROM sessions WHERE user_id = $1 ORDER BY n DESC LIMIT $2)",
                &[&user_id, &int(keep_at_most.max(1) as u64)],
            )
            .await?;
            if evicted > 0 {
                wake_feeds(&tx, user_id).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The session with this token hash, if it exists and has not expired at `now_ms`.
    async fn session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<Option<Session>, StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            let found = row(
                &client,
                "SELECT s.user_id, u.username, u.kv_seq, s.expires_at_ms, u.user_public_key
                 FROM sessions s JOIN users u ON u.user_id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_at_ms > $2",
                &[&token_hash.as_slice(), &int(now_ms)],
            )
            .await?;
            let Some(r) = found else { return Ok(None) };
            Ok(Some(Session {
                user_id: r.try_get(0)?,
                username: r.try_get(1)?,
                kv_seq: uint(r.try_get(2)?),
                expires_at_ms: uint(r.try_get(3)?),
                user_public_key: optional_bytes32(&r, 4)?,
            }))
        })
        .await
    }

    /// Revokes a session. Returns the user it belonged to, if any.
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let sql = "DELETE FROM sessions WHERE token_hash = $1 RETURNING user_id";
            let deleted: Option<String> =
                row(&tx, sql, &[&token_hash.as_slice()]).await?.map(|r| r.try_get(0)).transpose()?;
            if let Some(user_id) = &deleted {
                wake_feeds(&tx, user_id).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
        .await
    }

    /// Records a challenge, dropping expired ones.
    async fn create_challenge(&self, challenge: &Challenge, now_ms: u64) -> Result<(), StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            exec(&tx, "DELETE FROM challenges WHERE expires_at_ms <= $1", &[&int(now_ms)]).await?;
            exec(
                &tx,
                "INSERT INTO challenges (challenge_id, username, challenge, expires_at_ms) VALUES ($1, $2, $3, $4)",
                &[
                    &challenge.challenge_id,
                    &challenge.username,
                    &challenge.challenge.as_slice(),
                    &int(challenge.expires_at_ms),
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Removes and returns a challenge: each is answered at most once (of two
    /// accelerators taking it at once, one gets it).
    async fn take_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>, StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            let taken = row(
                &client,
                "DELETE FROM challenges WHERE challenge_id = $1
                 RETURNING challenge_id, username, challenge, expires_at_ms",
                &[&challenge_id],
            )
            .await?;
            let Some(r) = taken else { return Ok(None) };
            Ok(Some(Challenge {
                challenge_id: r.try_get(0)?,
                username: r.try_get(1)?,
                challenge: bytes32(&r, 2)?,
                expires_at_ms: uint(r.try_get(3)?),
            }))
        })
        .await
    }

    /// Bytes counted against `user_id`'s allowance.
    async fn used_bytes(&self, user_id: &str) -> Result<u64, StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            let used = row(&client, "SELECT used_bytes FROM users WHERE user_id = $1", &[&user_id]).await?;
            Ok(used.map(|r| r.try_get(0).map(uint)).transpose()?.unwrap_or(0))
        })
        .await
    }
}
