-- Sealed kv names (SPEC.md §4.4): SDKs from now on send each collection and id
-- sealed, and store nothing else. Every kv row stored before this step was written
-- by an SDK that sent its names in the clear: it is legacy (legacy_name true) until
-- the SDK renames it to its sealed names (POST /v1/kv/rename), which clears the
-- flag. A row written after it is legacy if either name lacks a sealed name's
-- shape (an older SDK still writing; the accelerator decides on each set).

-- Added with a constant default, the column costs no rewrite: the rows there now
-- read true from the catalogue. The default then turns false for the rows to come.
ALTER TABLE kv ADD COLUMN legacy_name BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE kv ALTER COLUMN legacy_name SET DEFAULT false;
-- A user's legacy keys in order (GET /v1/kv/legacy); empty once all are renamed.
CREATE INDEX kv_legacy ON kv(user_id, collection, id) WHERE legacy_name;
