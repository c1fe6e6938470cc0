//! An accelerator of this version started on rows an older schema wrote, on the
//! backend the tests run on: the tests that carry old data forward (key epochs,
//! recovery codes, legacy kv names) stop the migrations where their feature began, insert rows in
//! that schema's SQL, and let the accelerator's own migrations bring them up.

use super::postgres::Scratch;
use coffer_accelerator::Config;
use coffer_core::account::{self, RootSecret};

use super::{Data, TestServer, fast_kdf, random, remote_backend};

/// SQLite's migrations, in order (schema version = how many ran).
pub const SQLITE: [&str; 8] = [
    include_str!("../../migrations/sqlite/0001_accounts_and_kv.sql"),
    include_str!("../../migrations/sqlite/0002_spaces_and_files.sql"),
    include_str!("../../migrations/sqlite/0003_metering.sql"),
    include_str!("../../migrations/sqlite/0004_steps.sql"),
    include_str!("../../migrations/sqlite/0005_server_secret.sql"),
    include_str!("../../migrations/sqlite/0006_key_epochs.sql"),
    include_str!("../../migrations/sqlite/0007_recovery.sql"),
    include_str!("../../migrations/sqlite/0008_kv_names.sql"),
];

/// PostgreSQL's migrations, in order.
pub const POSTGRES: [&str; 6] = [
    include_str!("../../migrations/postgres/0001_accounts_and_kv.sql"),
    include_str!("../../migrations/postgres/0002_spaces_and_files.sql"),
    include_str!("../../migrations/postgres/0003_server_secret.sql"),
    include_str!("../../migrations/postgres/0004_key_epochs.sql"),
    include_str!("../../migrations/postgres/0005_recovery.sql"),
    include_str!("../../migrations/postgres/0006_kv_names.sql"),
];

/// A blob literal in the backend's SQL.
pub fn blob(bytes: &[u8], postgres: bool) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if postgres { format!("'\\x{hex}'::bytea") } else { format!("x'{hex}'") }
}

/// The INSERT of a user row as the older schemas hold it: `id`, `name`, who signs
/// in with the password "pw" (fast KDF parameters), `root` wrapped under it, the
/// user's kv sequence number and metered bytes.
pub fn user_insert(
    id: &str,
    name: &str,
    root: &RootSecret,
    (kv_seq, used_bytes): (u64, u64),
    postgres: bool,
) -> String {
    let salt: [u8; 16] = random();
    let kdf = fast_kdf();
    let pwk = account::derive_password_key("pw", &salt, &kdf).unwrap();
    format!(
        "INSERT INTO users (user_id, username, salt, kdf_alg, kdf_mem_kib, kdf_iterations, kdf_parallelism,
             login_public_key, wrapped_root, kv_seq, used_bytes)
         VALUES ('{id}', '{name}', {}, '{}', {}, {}, {}, {}, {}, {kv_seq}, {used_bytes});\n",
        blob(&salt, postgres),
        kdf.alg,
        kdf.mem_kib,
        kdf.iterations,
        kdf.parallelism,
        blob(&pwk.login_key().public_key(), postgres),
        blob(&pwk.wrap_key().wrap(root, name, random()), postgres),
    )
}

/// An accelerator of this version started on a database brought to SQLite schema
/// `sqlite_version` (or PostgreSQL schema `postgres_version`, with the record of
/// them the accelerator keeps), then given `rows`.
pub async fn server(sqlite_version: usize, postgres_version: usize, rows: &str) -> TestServer {
    server_with(sqlite_version, postgres_version, rows, |_| {}).await
}

/// [`server`], with `tweak` applied to the accelerator's config.
pub async fn server_with(
    sqlite_version: usize,
    postgres_version: usize,
    rows: &str,
    tweak: impl FnOnce(&mut Config),
) -> TestServer {
    if remote_backend() {
        let db = Scratch::new().await;
        let client = db.client().await;
        for step in &POSTGRES[..postgres_version] {
            client.batch_execute(step).await.unwrap();
        }
        let versions: Vec<String> = (1..=postgres_version).map(|v| format!("({v})")).collect();
        let record = format!(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
             INSERT INTO schema_migrations (version) VALUES {};",
            versions.join(", ")
        );
        client.batch_execute(&record).await.unwrap();
        client.batch_execute(rows).await.unwrap();
        let shards_dir = tempfile::tempdir().unwrap();
        let shards = shards_dir.path().join("shards").display().to_string();
        let data = Data::Remote { db, shards, shared_dir: Some(shards_dir) };
        TestServer::start_on(tempfile::tempdir().unwrap(), data, tweak).await
    } else {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("accelerator.sqlite3")).unwrap();
        for step in &SQLITE[..sqlite_version] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", sqlite_version).unwrap();
        conn.execute_batch(rows).unwrap();
        drop(conn);
        TestServer::start_in(dir, tweak).await
    }
}
