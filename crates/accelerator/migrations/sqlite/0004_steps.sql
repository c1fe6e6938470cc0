-- Work in steps: a file is a `draft` while its commit adds its shards a step at a
-- time, `live` once sealed, `gone` once deleted while its references are dropped a
-- step at a time; a space its last member left is `gone` until its files are.

ALTER TABLE files ADD COLUMN state TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('draft', 'live', 'gone'));
ALTER TABLE files ADD COLUMN shard_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN expires_at_ms INTEGER NOT NULL DEFAULT 0;
UPDATE files SET shard_count =
    (SELECT count(*) FROM file_shards f WHERE f.space_id = files.space_id AND f.file_id = files.file_id);
CREATE INDEX files_unsettled ON files(state, expires_at_ms) WHERE state <> 'live';
ALTER TABLE spaces ADD COLUMN gone INTEGER NOT NULL DEFAULT 0;
CREATE INDEX spaces_gone ON spaces(space_id) WHERE gone = 1;
