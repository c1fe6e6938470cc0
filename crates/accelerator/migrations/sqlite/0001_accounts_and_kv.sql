-- Accounts, sessions, challenges, kv values and the kv change log.

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
