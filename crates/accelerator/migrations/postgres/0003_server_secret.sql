-- The server secret (crate::secret): one row, written by the first accelerator to
-- start, read by every one after it, so unknown usernames answer alike on all.

CREATE TABLE server_secret (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    secret   BYTEA NOT NULL CHECK (octet_length(secret) = 32)
);
