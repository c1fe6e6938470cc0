-- Sealed kv names (SPEC.md §4.4): SDKs from now on send each collection and id
-- sealed, and store nothing else. Every kv row stored before this step was written
-- by an SDK that sent its names in the clear: it is legacy (legacy_name = 1) until
-- the SDK renames it to its sealed names (POST /v1/kv/rename), which clears the
-- flag. A row written after it is legacy if either name lacks a sealed name's
-- shape (an older SDK still writing; the accelerator decides on each set).

ALTER TABLE kv ADD COLUMN legacy_name INTEGER NOT NULL DEFAULT 0 CHECK (legacy_name IN (0, 1));
UPDATE kv SET legacy_name = 1;
-- A user's legacy keys in order (GET /v1/kv/legacy); empty once all are renamed.
CREATE INDEX kv_legacy ON kv(user_id, collection, id) WHERE legacy_name = 1;
