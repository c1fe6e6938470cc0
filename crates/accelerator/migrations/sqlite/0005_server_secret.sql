-- The server secret (crate::secret): one row, written at the first start. Earlier
-- versions kept it in the file DATA_DIR/server-secret, which the first start of
-- this version copies here.

CREATE TABLE server_secret (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    secret   BLOB NOT NULL CHECK (length(secret) = 32)
);
