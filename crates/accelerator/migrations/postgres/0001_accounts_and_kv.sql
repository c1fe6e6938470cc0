-- Accounts, sessions, challenges, kv values and the kv change log, with what each
-- user stores (used_bytes). Names and ids are compared byte by byte (COLLATE "C"),
-- as SQLite compares them: lists are in byte order whatever the server's locale.

CREATE TABLE users (
    user_id          TEXT COLLATE "C" PRIMARY KEY,
    username         TEXT COLLATE "C" NOT NULL UNIQUE,
    salt             BYTEA NOT NULL,
    kdf_alg          TEXT NOT NULL,
    kdf_mem_kib      BIGINT NOT NULL,
    kdf_iterations   BIGINT NOT NULL,
    kdf_parallelism  BIGINT NOT NULL,
    login_public_key BYTEA NOT NULL CHECK (octet_length(login_public_key) = 32),
    wrapped_root     BYTEA NOT NULL,
    -- The latest change's sequence number: a kv write locks this row, so changes
    -- get 1, 2, 3, … in commit order.
    kv_seq           BIGINT NOT NULL DEFAULT 0,
    used_bytes       BIGINT NOT NULL DEFAULT 0
);

-- n orders a user's sessions oldest first (SQLite's rowid).
CREATE TABLE sessions (
    token_hash    BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
    expires_at_ms BIGINT NOT NULL,
    n             BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX sessions_by_user ON sessions(user_id, n);
CREATE INDEX sessions_by_expiry ON sessions(expires_at_ms);

CREATE TABLE challenges (
    challenge_id  TEXT COLLATE "C" PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL,
    challenge     BYTEA NOT NULL CHECK (octet_length(challenge) = 32),
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX challenges_by_expiry ON challenges(expires_at_ms);

-- A value is either sealed (an opaque envelope) or plain (JSON text + MAC).
CREATE TABLE kv (
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
    collection TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    sealed     BYTEA,
    plain_json TEXT,
    plain_mac  BYTEA,
    PRIMARY KEY (user_id, collection, id),
    CHECK ((sealed IS NULL) <> (plain_json IS NULL))
);

-- Each user's change log, one change per key; a delete has no value.
CREATE TABLE kv_changes (
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
    seq        BIGINT NOT NULL,
    collection TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    sealed     BYTEA,
    plain_json TEXT,
    plain_mac  BYTEA,
    PRIMARY KEY (user_id, seq)
);
CREATE UNIQUE INDEX kv_changes_by_key ON kv_changes(user_id, collection, id);
