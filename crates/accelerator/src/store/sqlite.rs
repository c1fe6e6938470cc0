//! The embedded backend: one SQLite file (`accelerator.sqlite3`) in the data
//! directory, in WAL mode, behind one mutex-guarded connection.
//!
//! One connection keeps every transaction strictly ordered, which is what the change
//! log needs (sequence numbers are assigned inside the write transaction), and a kv
//! request holds it only for a few indexed statements.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use coffer_core::account::KdfParams;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Challenge, Change, ChangeWindow, Credentials, Records, Session, StoreError, StoredValue, User};

/// The database file's name inside the data directory.
pub const FILE_NAME: &str = "accelerator.sqlite3";

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    user_id          TEXT PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    salt             BLOB NOT NULL,
    kdf_alg          TEXT NOT NULL,
    kdf_mem_kib      INTEGER NOT NULL,
    kdf_iterations   INTEGER NOT NULL,
    kdf_parallelism  INTEGER NOT NULL,
    login_public_key BLOB NOT NULL,
    wrapped_root     BLOB NOT NULL,
    kv_seq           INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE IF NOT EXISTS sessions (
    token_hash    BLOB PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(user_id),
    expires_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_at_ms);

CREATE TABLE IF NOT EXISTS challenges (
    challenge_id  TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    challenge     BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS challenges_by_expiry ON challenges(expires_at_ms);

-- A value is either sealed (an opaque envelope) or plain (JSON text + MAC).
CREATE TABLE IF NOT EXISTS kv (
    user_id    TEXT NOT NULL REFERENCES users(user_id),
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    sealed     BLOB,
    plain_json TEXT,
    plain_mac  BLOB,
    PRIMARY KEY (user_id, collection, id),
    CHECK ((sealed IS NULL) <> (plain_json IS NULL))
) STRICT;

-- Each user's change log; a delete has no value.
CREATE TABLE IF NOT EXISTS kv_changes (
    user_id    TEXT NOT NULL REFERENCES users(user_id),
    seq        INTEGER NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    sealed     BLOB,
    plain_json TEXT,
    plain_mac  BLOB,
    PRIMARY KEY (user_id, seq)
) STRICT;
";

/// [`Records`] in one SQLite file.
pub struct SqliteRecords {
    /// The one connection; the mutex serialises transactions.
    conn: Mutex<Connection>,
    /// Change-log entries kept per user; older ones are pruned on write.
    retain: u64,
}

fn backend(err: rusqlite::Error) -> StoreError {
    StoreError::Backend(err.to_string())
}

/// SQLite integers are signed; every number stored here is far below `i64::MAX`.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqliteRecords {
    /// Opens (or creates) the database in `data_dir`, keeping `retain` change-log
    /// entries per user.
    pub fn open(data_dir: &Path, retain: u64) -> Result<Self, StoreError> {
        let conn = Connection::open(data_dir.join(FILE_NAME)).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        // FULL: a write the client saw acknowledged survives a power cut.
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "database schema version {version} is newer than this accelerator ({SCHEMA_VERSION}); upgrade it"
            )));
        }
        conn.execute_batch(SCHEMA).map_err(backend)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(backend)?;
        Ok(SqliteRecords { conn: Mutex::new(conn), retain: retain.max(1) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction rolls that transaction back when it unwinds, so
        // the connection is still usable.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

const USER_COLUMNS: &str = "user_id, username, salt, kdf_alg, kdf_mem_kib, kdf_iterations, \
                            kdf_parallelism, login_public_key, wrapped_root, kv_seq";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
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
    })
}

/// Reads a value from three columns (sealed, plain_json, plain_mac) starting at `at`.
fn value_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<StoredValue>> {
    let sealed: Option<Vec<u8>> = row.get(at)?;
    let json: Option<String> = row.get(at + 1)?;
    let mac: Option<[u8; 32]> = row.get(at + 2)?;
    Ok(match (sealed, json, mac) {
        (Some(bytes), _, _) => Some(StoredValue::Sealed(bytes)),
        (None, Some(json), Some(mac)) => Some(StoredValue::Plain { json, mac }),
        _ => None,
    })
}

/// The three value columns' contents for a value.
fn value_columns(value: &StoredValue) -> (Option<&[u8]>, Option<&str>, Option<&[u8]>) {
    match value {
        StoredValue::Sealed(bytes) => (Some(bytes), None, None),
        StoredValue::Plain { json, mac } => (None, Some(json), Some(mac)),
    }
}

impl SqliteRecords {
    /// Appends a change and prunes the log, inside the caller's transaction.
    fn append_change(
        &self,
        tx: &rusqlite::Transaction<'_>,
        user_id: &str,
        collection: &str,
        id: &str,
        value: Option<&StoredValue>,
    ) -> rusqlite::Result<u64> {
        let seq: i64 = tx.query_row(
            "UPDATE users SET kv_seq = kv_seq + 1 WHERE user_id = ?1 RETURNING kv_seq",
            [user_id],
            |r| r.get(0),
        )?;
        let (sealed, json, mac) = value.map(value_columns).unwrap_or((None, None, None));
        tx.execute(
            "INSERT INTO kv_changes (user_id, seq, collection, id, sealed, plain_json, plain_mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![user_id, seq, collection, id, sealed, json, mac],
        )?;
        tx.execute(
            "DELETE FROM kv_changes WHERE user_id = ?1 AND seq <= ?2",
            params![user_id, seq - int(self.retain)],
        )?;
        Ok(uint(seq))
    }
}

impl Records for SqliteRecords {
    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let c = &user.credentials;
        let result = self.conn().execute(
            &format!("INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)"),
            params![
                user.user_id,
                user.username,
                c.salt,
                c.kdf.alg,
                c.kdf.mem_kib,
                c.kdf.iterations,
                c.kdf.parallelism,
                c.login_public_key,
                c.wrapped_root
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(StoreError::UsernameTaken)
            }
            Err(e) => Err(backend(e)),
        }
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.conn()
            .query_row(&format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"), [username], user_from_row)
            .optional()
            .map_err(backend)
    }

    fn replace_credentials(
        &self,
        user_id: &str,
        expected_public_key: &[u8; 32],
        new: &Credentials,
        keep_session: &[u8; 32],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        let changed = tx
            .execute(
                "UPDATE users SET salt = ?3, kdf_alg = ?4, kdf_mem_kib = ?5, kdf_iterations = ?6,
                        kdf_parallelism = ?7, login_public_key = ?8, wrapped_root = ?9
                 WHERE user_id = ?1 AND login_public_key = ?2",
                params![
                    user_id,
                    expected_public_key,
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
        tx.execute("DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2", params![user_id, keep_session])
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(true)
    }

    fn create_session(
        &self,
        token_hash: &[u8; 32],
        user_id: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        tx.execute("DELETE FROM sessions WHERE expires_at_ms <= ?1", [int(now_ms)]).map_err(backend)?;
        tx.execute(
            "INSERT INTO sessions (token_hash, user_id, expires_at_ms) VALUES (?1, ?2, ?3)",
            params![token_hash, user_id, int(expires_at_ms)],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<Option<Session>, StoreError> {
        self.conn()
            .query_row(
                "SELECT s.user_id, u.username, u.kv_seq, s.expires_at_ms
                 FROM sessions s JOIN users u ON u.user_id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at_ms > ?2",
                params![token_hash, int(now_ms)],
                |r| {
                    Ok(Session {
                        user_id: r.get(0)?,
                        username: r.get(1)?,
                        kv_seq: uint(r.get(2)?),
                        expires_at_ms: uint(r.get(3)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    fn delete_session(&self, token_hash: &[u8; 32]) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("DELETE FROM sessions WHERE token_hash = ?1 RETURNING user_id", [token_hash], |r| r.get(0))
            .optional()
            .map_err(backend)
    }

    fn create_challenge(&self, challenge: &Challenge, now_ms: u64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        tx.execute("DELETE FROM challenges WHERE expires_at_ms <= ?1", [int(now_ms)]).map_err(backend)?;
        tx.execute(
            "INSERT INTO challenges (challenge_id, username, challenge, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![challenge.challenge_id, challenge.username, challenge.challenge, int(challenge.expires_at_ms)],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    fn take_challenge(&self, challenge_id: &str) -> Result<Option<Challenge>, StoreError> {
        self.conn()
            .query_row(
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
    }

    fn kv_get(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<StoredValue>, StoreError> {
        let found = self
            .conn()
            .query_row(
                "SELECT sealed, plain_json, plain_mac FROM kv WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
                params![user_id, collection, id],
                |r| value_from_row(r, 0),
            )
            .optional()
            .map_err(backend)?;
        Ok(found.flatten())
    }

    fn kv_set(&self, user_id: &str, collection: &str, id: &str, value: &StoredValue) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        let (sealed, json, mac) = value_columns(value);
        tx.execute(
            "INSERT INTO kv (user_id, collection, id, sealed, plain_json, plain_mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (user_id, collection, id)
             DO UPDATE SET sealed = excluded.sealed, plain_json = excluded.plain_json, plain_mac = excluded.plain_mac",
            params![user_id, collection, id, sealed, json, mac],
        )
        .map_err(backend)?;
        let seq = self.append_change(&tx, user_id, collection, id, Some(value)).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(seq)
    }

    fn kv_delete(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        let deleted = tx
            .execute("DELETE FROM kv WHERE user_id = ?1 AND collection = ?2 AND id = ?3", params![user_id, collection, id])
            .map_err(backend)?;
        if deleted == 0 {
            return Ok(None);
        }
        let seq = self.append_change(&tx, user_id, collection, id, None).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Some(seq))
    }

    fn kv_list(&self, user_id: &str, collection: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM kv WHERE user_id = ?1 AND collection = ?2 ORDER BY id")
            .map_err(backend)?;
        let ids = stmt
            .query_map(params![user_id, collection], |r| r.get(0))
            .map_err(backend)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(backend)?;
        Ok(ids)
    }

    fn changes_after(&self, user_id: &str, after: u64, limit: usize) -> Result<ChangeWindow, StoreError> {
        let mut conn = self.conn();
        // One read transaction: the head and the changes come from the same snapshot.
        let tx = conn.transaction().map_err(backend)?;
        let head: i64 = tx
            .query_row("SELECT kv_seq FROM users WHERE user_id = ?1", [user_id], |r| r.get(0))
            .optional()
            .map_err(backend)?
            .unwrap_or(0);
        let changes = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, collection, id, sealed, plain_json, plain_mac FROM kv_changes
                     WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(backend)?;
            stmt.query_map(params![user_id, int(after), int(limit as u64)], |r| {
                Ok(Change {
                    seq: uint(r.get(0)?),
                    collection: r.get(1)?,
                    id: r.get(2)?,
                    value: value_from_row(r, 3)?,
                })
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?
        };
        tx.commit().map_err(backend)?;
        Ok(ChangeWindow { head: uint(head), changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, key: u8) -> User {
        User {
            user_id: format!("id-{name}"),
            username: name.into(),
            credentials: Credentials {
                salt: [1; 16],
                kdf: KdfParams::default(),
                login_public_key: [key; 32],
                wrapped_root: vec![1; 61],
            },
            kv_seq: 0,
        }
    }

    fn open(retain: u64) -> (tempfile::TempDir, SqliteRecords) {
        let dir = tempfile::tempdir().unwrap();
        let records = SqliteRecords::open(dir.path(), retain).unwrap();
        (dir, records)
    }

    #[test]
    fn log_is_consecutive_and_pruned_to_retain() {
        let (_dir, db) = open(3);
        db.create_user(&user("ada", 1)).unwrap();
        for i in 1..=5u64 {
            assert_eq!(db.kv_set("id-ada", "c", &format!("k{i}"), &StoredValue::Sealed(vec![1; 29])).unwrap(), i);
        }
        assert_eq!(db.kv_delete("id-ada", "c", "nope").unwrap(), None);
        assert_eq!(db.kv_delete("id-ada", "c", "k1").unwrap(), Some(6));
        let window = db.changes_after("id-ada", 0, 100).unwrap();
        assert_eq!(window.head, 6);
        let seqs: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [4, 5, 6], "only the last three are kept; the gap after 0 is visible");
        assert_eq!(window.changes[2].value, None);
        let window = db.changes_after("id-ada", 4, 1).unwrap();
        assert_eq!(window.changes.len(), 1, "limit respected");
        assert_eq!(window.changes[0].seq, 5);
    }

    #[test]
    fn reopening_keeps_everything() {
        let (dir, db) = open(10);
        db.create_user(&user("ada", 1)).unwrap();
        let plain = StoredValue::Plain { json: "[1]".into(), mac: [9; 32] };
        db.kv_set("id-ada", "c", "i", &plain).unwrap();
        drop(db);
        let db = SqliteRecords::open(dir.path(), 10).unwrap();
        assert_eq!(db.kv_get("id-ada", "c", "i").unwrap(), Some(plain));
        assert_eq!(db.user_by_name("ada").unwrap().unwrap().kv_seq, 1);
        assert_eq!(db.create_user(&user("ada", 2)), Err(StoreError::UsernameTaken));
    }

    #[test]
    fn challenges_are_taken_once() {
        let (_dir, db) = open(10);
        let ch = Challenge { challenge_id: "c1".into(), username: "ada".into(), challenge: [3; 32], expires_at_ms: 100 };
        db.create_challenge(&ch, 0).unwrap();
        assert_eq!(db.take_challenge("c1").unwrap(), Some(ch));
        assert_eq!(db.take_challenge("c1").unwrap(), None);
    }

    #[test]
    fn credentials_change_only_from_the_expected_key() {
        let (_dir, db) = open(10);
        db.create_user(&user("ada", 1)).unwrap();
        db.create_session(&[1; 32], "id-ada", 1_000, 0).unwrap();
        db.create_session(&[2; 32], "id-ada", 1_000, 0).unwrap();
        let new = user("ada", 7).credentials;
        assert!(!db.replace_credentials("id-ada", &[9; 32], &new, &[1; 32]).unwrap(), "stale key");
        assert!(db.session(&[2; 32], 0).unwrap().is_some(), "nothing revoked by a refused change");
        assert!(db.replace_credentials("id-ada", &[1; 32], &new, &[1; 32]).unwrap());
        assert_eq!(db.user_by_name("ada").unwrap().unwrap().credentials, new);
        assert!(db.session(&[1; 32], 0).unwrap().is_some());
        assert!(db.session(&[2; 32], 0).unwrap().is_none());
        assert!(db.session(&[1; 32], 1_000).unwrap().is_none(), "expired at its expiry");
    }
}
