-- Key epochs (SPEC.md F.12): each account's published X25519 public key; each
-- space's current epoch and whether a rotation is due; each member's roster entry
-- and the current epoch's key sealed to them; the epoch each file's record is sealed
-- under; each epoch's link. What was there before is at epoch 0, with no roster
-- entry and no sealed key.

-- NULL until the account publishes it; it never changes after.
ALTER TABLE users ADD COLUMN user_public_key BYTEA CHECK (octet_length(user_public_key) = 32);

-- Changed only under the space's row lock, with its members' keys and entries.
ALTER TABLE spaces ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
-- true from a member's leaving or removal until the next rotation.
ALTER TABLE spaces ADD COLUMN rotation_due BOOLEAN NOT NULL DEFAULT false;

-- roster_mac: the member's roster entry under the current epoch's key (NULL: none).
-- sealed_key: the current epoch's key sealed to the member (NULL at epoch 0, or for
-- a member the last rotation left out).
ALTER TABLE members ADD COLUMN roster_mac BYTEA CHECK (octet_length(roster_mac) = 32);
ALTER TABLE members ADD COLUMN sealed_key BYTEA;

ALTER TABLE files ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- Epoch n's link: epoch n - 1's key sealed under epoch n's. Deleted with its space.
CREATE TABLE epoch_links (
    space_id        TEXT COLLATE "C" NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    epoch           BIGINT NOT NULL,
    sealed_previous BYTEA NOT NULL,
    made_by         TEXT COLLATE "C" NOT NULL,
    made_at_ms      BIGINT NOT NULL,
    PRIMARY KEY (space_id, epoch)
);
