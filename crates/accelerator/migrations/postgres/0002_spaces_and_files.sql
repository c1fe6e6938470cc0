-- Shards, uploads, spaces, members, invites, files and the shards each file
-- references. Work goes in steps: a file is a `draft` while its commit adds its
-- shards a step at a time, `live` once sealed, `gone` once deleted while its
-- references are dropped a step at a time; a space its last member left is `gone`
-- until its files are. Every `n` orders a list by insertion (SQLite's rowid).

-- Every stored shard. stored_at_ms is when it was last put or reported present;
-- one that no file references is collected once that is older than the grace.
CREATE TABLE shards (
    address      BYTEA PRIMARY KEY CHECK (octet_length(address) = 32),
    size         BIGINT NOT NULL,
    stored_at_ms BIGINT NOT NULL
);
CREATE INDEX shards_by_age ON shards(stored_at_ms);

-- A shard its uploader has not committed yet: it pins the shard, and costs the
-- uploader its size, until the deadline passes or the uploader commits it.
CREATE TABLE uploads (
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
    address       BYTEA NOT NULL REFERENCES shards(address),
    size          BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, address)
);
CREATE INDEX uploads_by_address ON uploads(address);
CREATE INDEX uploads_by_expiry ON uploads(expires_at_ms);

-- Space writes lock their space's row (membership, invites, quota), so writers on
-- different accelerators take turns.
CREATE TABLE spaces (
    space_id      TEXT COLLATE "C" PRIMARY KEY,
    sealed_name   BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    created_by    TEXT COLLATE "C" NOT NULL,
    charged_bytes BIGINT NOT NULL,
    gone          BOOLEAN NOT NULL DEFAULT false,
    n             BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX spaces_gone ON spaces(space_id) WHERE gone;

CREATE TABLE members (
    space_id     TEXT COLLATE "C" NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(user_id),
    role         TEXT NOT NULL CHECK (role IN ('reader', 'writer', 'owner')),
    joined_at_ms BIGINT NOT NULL,
    n            BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (space_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id);

-- Only the hash of an invite's secret; the secret and the space key never arrive.
CREATE TABLE invites (
    space_id      TEXT COLLATE "C" NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    secret_hash   BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
    role          TEXT NOT NULL CHECK (role IN ('reader', 'writer')),
    expires_at_ms BIGINT NOT NULL,
    max_uses      BIGINT NOT NULL,
    uses          BIGINT NOT NULL DEFAULT 0,
    created_by    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (space_id, secret_hash)
);

CREATE TABLE files (
    space_id      TEXT COLLATE "C" NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    file_id       TEXT COLLATE "C" NOT NULL,
    sealed_record BYTEA NOT NULL,
    stored_bytes  BIGINT NOT NULL,
    created_by    TEXT COLLATE "C" NOT NULL,
    created_at_ms BIGINT NOT NULL,
    charged_bytes BIGINT NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('draft', 'live', 'gone')),
    shard_count   BIGINT NOT NULL DEFAULT 0,
    expires_at_ms BIGINT NOT NULL DEFAULT 0,
    n             BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (space_id, file_id)
);
CREATE INDEX files_listed ON files(space_id, created_at_ms, n) WHERE state = 'live';
CREATE INDEX files_unsettled ON files(state, expires_at_ms) WHERE state <> 'live';

-- The references that keep shards alive. A shard's record cannot be dropped while
-- a row here names it (the foreign key refuses).
CREATE TABLE file_shards (
    space_id TEXT COLLATE "C" NOT NULL,
    file_id  TEXT COLLATE "C" NOT NULL,
    address  BYTEA NOT NULL REFERENCES shards(address),
    PRIMARY KEY (space_id, file_id, address),
    FOREIGN KEY (space_id, file_id) REFERENCES files(space_id, file_id) ON DELETE CASCADE
);
CREATE INDEX file_shards_by_address ON file_shards(address);
