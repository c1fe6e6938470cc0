-- Metering: what each user stores, uploads pinned only by their uploader, and a
-- change log that keeps only the latest change of each key. Existing data is
-- charged as it stands; the log drops the changes later ones replaced.

ALTER TABLE users ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN charged_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE spaces ADD COLUMN charged_bytes INTEGER NOT NULL DEFAULT 0;

-- A shard its uploader has not committed yet: it pins the shard, and costs the
-- uploader its size, until the deadline passes or the uploader commits it.
CREATE TABLE uploads (
    user_id       TEXT NOT NULL REFERENCES users(user_id),
    address       BLOB NOT NULL REFERENCES shards(address),
    size          INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, address)
) STRICT, WITHOUT ROWID;
CREATE INDEX uploads_by_address ON uploads(address);
CREATE INDEX uploads_by_expiry ON uploads(expires_at_ms);

CREATE INDEX kv_changes_by_key ON kv_changes(user_id, collection, id);
DELETE FROM kv_changes WHERE EXISTS (
    SELECT 1 FROM kv_changes later WHERE later.user_id = kv_changes.user_id
    AND later.collection = kv_changes.collection AND later.id = kv_changes.id AND later.seq > kv_changes.seq);

UPDATE files SET charged_bytes = stored_bytes + length(sealed_record) + 128
    + 64 * (SELECT count(*) FROM file_shards f WHERE f.space_id = files.space_id AND f.file_id = files.file_id);
UPDATE spaces SET charged_bytes = length(sealed_name) + 128,
    created_by = coalesce((SELECT user_id FROM members m WHERE m.space_id = spaces.space_id AND m.role = 'owner'
                           ORDER BY m.joined_at_ms LIMIT 1), '');
UPDATE users SET used_bytes =
      coalesce((SELECT sum(length(CAST(collection AS BLOB)) + length(CAST(id AS BLOB)) + coalesce(length(sealed), 0)
                         + coalesce(length(CAST(plain_json AS BLOB)), 0) + coalesce(length(plain_mac), 0) + 64)
                FROM kv WHERE kv.user_id = users.user_id), 0)
    + coalesce((SELECT sum(charged_bytes) FROM files WHERE files.created_by = users.user_id), 0)
    + coalesce((SELECT sum(charged_bytes) FROM spaces WHERE spaces.created_by = users.user_id), 0);
