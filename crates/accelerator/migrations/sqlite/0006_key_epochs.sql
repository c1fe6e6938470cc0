-- Key epochs (SPEC.md F.12): each account's published X25519 public key; each
-- space's current epoch and whether a rotation is due; each member's roster entry
-- and the current epoch's key sealed to them; the epoch each file's record is sealed
-- under; each epoch's link. What was there before is at epoch 0, with no roster
-- entry and no sealed key.

-- NULL until the account publishes it; it never changes after.
ALTER TABLE users ADD COLUMN user_public_key BLOB CHECK (length(user_public_key) = 32);

ALTER TABLE spaces ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
-- 1 from a member's leaving or removal until the next rotation.
ALTER TABLE spaces ADD COLUMN rotation_due INTEGER NOT NULL DEFAULT 0 CHECK (rotation_due IN (0, 1));

-- roster_mac: the member's roster entry under the current epoch's key (NULL: none).
-- sealed_key: the current epoch's key sealed to the member (NULL at epoch 0, or for
-- a member the last rotation left out).
ALTER TABLE members ADD COLUMN roster_mac BLOB CHECK (length(roster_mac) = 32);
ALTER TABLE members ADD COLUMN sealed_key BLOB;

ALTER TABLE files ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;

-- Epoch n's link: epoch n - 1's key sealed under epoch n's. Deleted with its space.
CREATE TABLE epoch_links (
    space_id        TEXT NOT NULL REFERENCES spaces(space_id) ON DELETE CASCADE,
    epoch           INTEGER NOT NULL,
    sealed_previous BLOB NOT NULL,
    made_by         TEXT NOT NULL,
    made_at_ms      INTEGER NOT NULL,
    PRIMARY KEY (space_id, epoch)
) STRICT, WITHOUT ROWID;
