-- Recovery codes (SPEC.md §3.8): the public half of the account's recovery key and
-- the root secret wrapped under the code. Both NULL: the account has no code. A new
-- code replaces both at once.

ALTER TABLE users ADD COLUMN recovery_public_key BYTEA CHECK (octet_length(recovery_public_key) = 32);
ALTER TABLE users ADD COLUMN recovery_wrapped_root BYTEA;
ALTER TABLE users ADD CONSTRAINT users_recovery_whole
    CHECK ((recovery_public_key IS NULL) = (recovery_wrapped_root IS NULL));
