-- Shards, spaces, members, invites, files and the shards each file references.

-- Every stored shard. stored_at_ms is when it was last put or reported present;
-- one that no file references is collected once that is older than the grace.
CREATE TABLE shards (
    address      BLOB PRIMARY KEY CHECK (length(address) = 32),
    size         INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX shards_by_age ON shards(stored_at_ms);

CREATE TABLE spaces (
    space_id      TEXT PRIMARY KEY,
    sealed_name   BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
    space_id     TEXT NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(user_id),
    role         TEXT NOT NULL CHECK (role IN ('reader', 'writer', 'owner')),
    joined_at_ms INTEGER NOT NULL,
    PRIMARY KEY (space_id, user_id)
) STRICT;
CREATE INDEX members_by_user ON members(user_id);

-- Only the hash of an invite's secret; the secret and the space key never arrive.
CREATE TABLE invites (
    space_id      TEXT NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    secret_hash   BLOB NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('reader', 'writer')),
    expires_at_ms INTEGER NOT NULL,
    max_uses      INTEGER NOT NULL,
    uses          INTEGER NOT NULL DEFAULT 0,
    created_by    TEXT NOT NULL,
    PRIMARY KEY (space_id, secret_hash)
) STRICT;

CREATE TABLE files (
    space_id      TEXT NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    file_id       TEXT NOT NULL,
    sealed_record BLOB NOT NULL,
    stored_bytes  INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (space_id, file_id)
) STRICT;

-- The references that keep shards alive. A shard's record cannot be dropped while
-- a row here names it (the foreign key refuses).
CREATE TABLE file_shards (
    space_id TEXT NOT NULL,
    file_id  TEXT NOT NULL,
    address  BLOB NOT NULL REFERENCES shards(address),
    PRIMARY KEY (space_id, file_id, address),
    FOREIGN KEY (space_id, file_id) REFERENCES files(space_id, file_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX file_shards_by_address ON file_shards(address);
