//! The SQLite backend's tests and the shard keeper's record tests, run against a
//! fresh PostgreSQL database each, and what only several writers at once can show:
//! sequence numbers, quotas and invite uses hold under writers on several pools
//! (several accelerators) at once.
//!
//! The server is `COFFER_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates a database of
//! its own there and drops it when done.

use std::sync::Arc;

use coffer_core::account::KdfParams;
use coffer_core::proto::storage::Role;
use coffer_core::shard::ShardAddress;

use super::*;
use crate::store::{
    Challenge, Credentials, Invite, NewFile, Quota, Quotas, StoredValue, Unwound, User, Withdrawn, file_cost, kv_cost,
    space_cost,
};

/// The server tests use, as an admin URL (its database is where others are made).
fn server_url() -> String {
    std::env::var("COFFER_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own on the test server, dropped when it goes (even when the
/// test fails).
struct Scratch {
    /// Its name on the server.
    name: String,
    /// Where it is.
    config: tokio_postgres::Config,
}

async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&server_url(), NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

impl Scratch {
    /// Creates an empty database.
    async fn new() -> Scratch {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name = format!("coffer_test_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let create = format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0");
        admin().await.batch_execute(&create).await.unwrap();
        let mut config: tokio_postgres::Config = server_url().parse().unwrap();
        config.dbname(&name);
        Scratch { name, config }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let name = self.name.clone();
        // On a thread of its own: this may run while the test's runtime unwinds.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                admin().await.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
            })
        });
        if let Ok(Err(err)) = dropped.join() {
            eprintln!("could not drop test database {}: {err}", self.name);
        }
    }
}

/// Records in a database of their own.
struct TestDb {
    /// The records (closed before the database is dropped).
    records: PgRecords,
    /// The database.
    scratch: Scratch,
}

impl std::ops::Deref for TestDb {
    type Target = PgRecords;
    fn deref(&self) -> &PgRecords {
        &self.records
    }
}

impl TestDb {
    /// Creates a database and connects to it, keeping `retain` changes per user.
    async fn new(retain: u64) -> TestDb {
        let scratch = Scratch::new().await;
        let records = PgRecords::connect_config(scratch.config.clone(), retain, POOL_SIZE).await.unwrap();
        TestDb { records, scratch }
    }

    /// The same, with steps of `step` shards.
    fn with_step(self, step: usize) -> TestDb {
        TestDb { records: self.records.with_step(step), scratch: self.scratch }
    }

    /// Another accelerator on the same database.
    async fn another(&self, retain: u64) -> PgRecords {
        PgRecords::connect_config(self.scratch.config.clone(), retain, POOL_SIZE).await.unwrap()
    }

    /// The number a query for one count answers.
    async fn count(&self, sql: &str) -> i64 {
        let client = self.client().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }
}

fn user(name: &str, key: u8) -> User {
    User {
        user_id: format!("id-{name}"),
        username: name.into(),
        credentials: Credentials {
            salt: [1; 16],
            kdf: KdfParams::default(),
            login_public_key: [key; 32],
            wrapped_root: vec![1; 61],
        },
        kv_seq: 0,
    }
}

const ALL: PageRequest = PageRequest { after: None, limit: 1000 };

/// Checks that every user's running total equals what they store.
async fn totals_agree(db: &PgRecords) {
    for (user_id, used, recounted) in accounts::recount(db).await {
        assert_eq!(used, recounted, "{user_id}'s used_bytes drifted from what they store");
    }
}

#[test]
fn futures_are_send() {
    // async-trait's traits need Send futures; this fails to compile otherwise.
    fn send<T: Send>(_: &T) {}
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    let manager = Manager::new("postgres://nobody@127.0.0.1:1/none".parse().unwrap(), NoTls);
    let db = PgRecords { pool: Pool::builder(manager).build().unwrap(), retain: 1, step: 1 };
    let (a, page, file) = (ShardAddress::of(b"a"), ALL, new_file("s", "f", "u", vec![]));
    let value = StoredValue::Sealed(vec![]);
    let ch = Challenge { challenge_id: "c".into(), username: "u".into(), challenge: [0; 32], expires_at_ms: 0 };
    let invite =
        Invite { space_id: "s".into(), secret_hash: [0; 32], role: Role::Reader, expires_at_ms: 0, max_uses: 1 };
    let what = Withdrawn::Space { space_id: "s".into() };
    send(&db.create_user(&user("u", 1)));
    send(&db.user_by_name("u"));
    send(&db.replace_credentials("u", &[0; 32], &user("u", 1).credentials, &[0; 32]));
    send(&db.create_session(&[0; 32], "u", 0, 0, 1));
    send(&db.session(&[0; 32], 0));
    send(&db.delete_session(&[0; 32]));
    send(&db.create_challenge(&ch, 0));
    send(&db.take_challenge("c"));
    send(&db.used_bytes("u"));
    send(&db.kv_get("u", "c", "i"));
    send(&db.kv_set("u", "c", "i", &value, 0));
    send(&db.kv_delete("u", "c", "i"));
    send(&db.kv_list("u", "c", &page));
    send(&db.changes_after("u", 0, 1));
    send(&db.create_space("s", b"n", "u", 0, 0));
    send(&db.spaces_of("u", &page));
    send(&db.create_invite("u", &invite, 0));
    send(&db.join_space("s", &[0; 32], "u", 0));
    send(&db.members("s", "u", &page));
    send(&db.leave_space("s", "u"));
    send(&db.remove_member("s", "u", "v"));
    send(&db.space_usage("s", "u"));
    send(&db.record_upload("u", &a, 1, 0, 0));
    send(&db.touch_uploads("u", &[a], 0));
    send(&db.expire_uploads(0, 1));
    send(&db.shard_recorded(&a));
    send(&db.collectable_shards(0, 1));
    send(&db.forget_shards(&[a], 0));
    send(&db.check_commit(&file, Quotas::NONE));
    send(&db.commit_whole(&file, Quotas::NONE));
    send(&db.draft_file(&file, 0..0, 0));
    send(&db.seal_draft(&file, Quotas::NONE));
    send(&db.abandon_draft("s", "f", "u"));
    send(&db.commit_file(&file, Quotas::NONE, 0));
    send(&db.files("s", "u", &page));
    send(&db.file("s", "f", "u"));
    send(&db.delete_file("s", "f", "u"));
    send(&db.unwind(&what, 1));
    send(&db.withdrawn(0, 1));
    send(&db.server_secret([0; 32]));
}

#[tokio::test]
async fn log_is_pruned_to_retain() {
    let db = TestDb::new(3).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    for i in 1..=5u64 {
        let set = db.kv_set("id-ada", "c", &format!("k{i}"), &StoredValue::Sealed(vec![1; 29]), u64::MAX).await;
        assert_eq!(set.unwrap(), i);
    }
    assert_eq!(db.kv_delete("id-ada", "c", "nope").await.unwrap(), None);
    assert_eq!(db.kv_delete("id-ada", "c", "k1").await.unwrap(), Some(6));
    let window = db.changes_after("id-ada", 0, 100).await.unwrap();
    assert_eq!((window.head, window.floor), (6, 3));
    let seqs: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [4, 5, 6], "only the last three are kept; a reader below the floor resyncs");
    assert_eq!(window.changes[2].value, None);
    let window = db.changes_after("id-ada", 4, 1).await.unwrap();
    assert_eq!(window.changes.len(), 1, "limit respected");
    assert_eq!(window.changes[0].seq, 5);
}

#[tokio::test]
async fn reconnecting_keeps_everything() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    let plain = StoredValue::Plain { json: "[1]".into(), mac: [9; 32] };
    db.kv_set("id-ada", "c", "i", &plain, u64::MAX).await.unwrap();
    let again = db.another(10).await;
    assert_eq!(again.kv_get("id-ada", "c", "i").await.unwrap(), Some(plain));
    assert_eq!(again.user_by_name("ada").await.unwrap().unwrap(), User { kv_seq: 1, ..user("ada", 1) });
    assert_eq!(again.create_user(&user("ada", 2)).await, Err(StoreError::UsernameTaken));
}

#[tokio::test]
async fn kv_lists_in_byte_order_with_cursors() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    // Byte order, whatever the server's locale: "B" < "a" < "b" < "é".
    for id in ["é", "b", "a", "B"] {
        db.kv_set("id-ada", "c", id, &StoredValue::Sealed(vec![1]), u64::MAX).await.unwrap();
    }
    db.kv_set("id-ada", "other", "x", &StoredValue::Sealed(vec![1]), u64::MAX).await.unwrap();
    let first = db.kv_list("id-ada", "c", &PageRequest { after: None, limit: 3 }).await.unwrap();
    assert_eq!(first.items, ["B", "a", "b"]);
    let rest = db.kv_list("id-ada", "c", &PageRequest { after: first.next, limit: 3 }).await.unwrap();
    assert_eq!((rest.items, rest.next), (vec!["é".to_string()], None));
}

#[tokio::test]
async fn a_key_rewritten_costs_one_value_in_the_log_and_the_allowance() {
    let db = TestDb::new(10_000).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    let value = StoredValue::Sealed(vec![1; 1000]);
    for _ in 0..200 {
        db.kv_set("id-ada", "c", "k", &value, u64::MAX).await.unwrap();
    }
    db.kv_set("id-ada", "c", "other", &value, u64::MAX).await.unwrap();
    let window = db.changes_after("id-ada", 0, 1000).await.unwrap();
    let seqs: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [200, 201], "only the latest change of each key is kept");
    assert_eq!(window.floor, 0, "nothing pruned: the holes are replaced changes");
    let cost = kv_cost("c", "k", &value);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), cost + kv_cost("c", "other", &value));
    // Past the allowance: refused, nothing written; a smaller value still fits.
    let big = StoredValue::Sealed(vec![1; 5000]);
    let used = db.used_bytes("id-ada").await.unwrap();
    let err = db.kv_set("id-ada", "c", "k", &big, used + 100).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { limit: Quota::User, .. }), "{err:?}");
    assert_eq!(db.kv_get("id-ada", "c", "k").await.unwrap(), Some(value));
    db.kv_set("id-ada", "c", "k", &StoredValue::Sealed(vec![1; 10]), used).await.unwrap();
    db.kv_delete("id-ada", "c", "k").await.unwrap();
    db.kv_delete("id-ada", "c", "other").await.unwrap();
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), 0, "deleting refunds");
}

#[tokio::test]
async fn a_space_holds_a_bounded_number_of_live_invites() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"n", "id-ada", 0, u64::MAX).await.unwrap();
    let invite = |n: u64, expires_at_ms: u64| Invite {
        space_id: "s".into(),
        secret_hash: {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&n.to_be_bytes());
            h
        },
        role: Role::Reader,
        expires_at_ms,
        max_uses: 1,
    };
    for n in 0..spaces::MAX_LIVE_INVITES {
        db.create_invite("id-ada", &invite(n, 100), 0).await.unwrap();
    }
    let more = db.create_invite("id-ada", &invite(spaces::MAX_LIVE_INVITES, 100), 0).await;
    assert_eq!(more, Err(StoreError::TooManyInvites { max: spaces::MAX_LIVE_INVITES }));
    db.create_invite("id-ada", &invite(0, 200), 0).await.expect("the same secret again replaces its invite");
    db.create_invite("id-ada", &invite(spaces::MAX_LIVE_INVITES, 300), 100).await.expect("expired ones make room");
}

#[tokio::test]
async fn membership_roles_invites_and_pages() {
    let db = TestDb::new(10).await;
    for (name, key) in [("ada", 1), ("bob", 2), ("cy", 3)] {
        db.create_user(&user(name, key)).await.unwrap();
    }
    db.create_space("s", b"name", "id-ada", 5, u64::MAX).await.unwrap();
    assert_eq!(db.create_space("s", b"name", "id-bob", 5, u64::MAX).await, Err(StoreError::SpaceTaken));
    let invite =
        Invite { space_id: "s".into(), secret_hash: [7; 32], role: Role::Writer, expires_at_ms: 50, max_uses: 1 };
    assert_eq!(db.create_invite("id-bob", &invite, 0).await, Err(StoreError::NotMember));
    db.create_invite("id-ada", &invite, 0).await.unwrap();
    assert_eq!(db.join_space("s", &[8; 32], "id-bob", 0).await, Err(StoreError::InviteInvalid));
    assert_eq!(db.join_space("s", &[7; 32], "id-bob", 50).await, Err(StoreError::InviteExpired));
    assert_eq!(db.join_space("s", &[7; 32], "id-bob", 10).await.unwrap().role, Role::Writer);
    assert_eq!(db.join_space("s", &[7; 32], "id-bob", 10).await.unwrap().role, Role::Writer, "a member again");
    assert_eq!(db.join_space("s", &[7; 32], "id-cy", 10).await, Err(StoreError::InviteUsedUp));
    assert_eq!(db.create_invite("id-bob", &invite, 0).await, Err(StoreError::RoleTooLow { needed: Role::Owner }));
    assert_eq!(db.remove_member("s", "id-bob", "id-ada").await, Err(StoreError::RoleTooLow { needed: Role::Owner }));
    assert_eq!(db.remove_member("s", "id-ada", "id-cy").await, Err(StoreError::NoSuchMember));
    assert_eq!(db.remove_member("s", "id-ada", "id-ada").await, Err(StoreError::LastOwner));
    assert_eq!(db.leave_space("s", "id-ada").await, Err(StoreError::LastOwner));
    let first = db.members("s", "id-bob", &PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(first.items[0].user_id, "id-ada");
    let rest = db.members("s", "id-bob", &PageRequest { after: first.next, limit: 1 }).await.unwrap();
    assert_eq!((rest.items[0].user_id.as_str(), rest.next), ("id-bob", None));
    let bad = PageRequest { after: Some("nope".into()), limit: 1 };
    assert_eq!(db.members("s", "id-bob", &bad).await, Err(StoreError::BadCursor));
    assert_eq!(db.members("s", "id-cy", &ALL).await, Err(StoreError::NotMember));
    db.create_space("t", b"name", "id-bob", 1, u64::MAX).await.unwrap();
    let spaces: Vec<String> =
        db.spaces_of("id-bob", &ALL).await.unwrap().items.into_iter().map(|m| m.space_id).collect();
    assert_eq!(spaces, ["t", "s"], "oldest first");
    db.remove_member("s", "id-ada", "id-bob").await.unwrap();
    assert_eq!(db.space_usage("s", "id-bob").await, Err(StoreError::NotMember));
    assert_eq!(db.leave_space("t", "id-bob").await, Ok(true), "the last member leaves");
    totals_agree(&db).await;
}

#[tokio::test]
async fn challenges_are_taken_once() {
    let db = TestDb::new(10).await;
    let ch = Challenge { challenge_id: "c1".into(), username: "ada".into(), challenge: [3; 32], expires_at_ms: 100 };
    db.create_challenge(&ch, 0).await.unwrap();
    assert_eq!(db.take_challenge("c1").await.unwrap(), Some(ch));
    assert_eq!(db.take_challenge("c1").await.unwrap(), None);
}

#[tokio::test]
async fn credentials_change_only_from_the_expected_key() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_session(&[1; 32], "id-ada", 1_000, 0, 10).await.unwrap();
    db.create_session(&[2; 32], "id-ada", 1_000, 0, 10).await.unwrap();
    let new = user("ada", 7).credentials;
    assert!(!db.replace_credentials("id-ada", &[9; 32], &new, &[1; 32]).await.unwrap(), "stale key");
    assert!(db.session(&[2; 32], 0).await.unwrap().is_some(), "nothing revoked by a refused change");
    assert!(db.replace_credentials("id-ada", &[1; 32], &new, &[1; 32]).await.unwrap());
    assert_eq!(db.user_by_name("ada").await.unwrap().unwrap().credentials, new);
    assert!(db.session(&[1; 32], 0).await.unwrap().is_some());
    assert!(db.session(&[2; 32], 0).await.unwrap().is_none());
    assert!(db.session(&[1; 32], 1_000).await.unwrap().is_none(), "expired at its expiry");
    assert_eq!(db.delete_session(&[1; 32]).await.unwrap().as_deref(), Some("id-ada"));
    assert_eq!(db.delete_session(&[1; 32]).await.unwrap(), None);
}

#[tokio::test]
async fn signing_in_past_the_session_cap_revokes_the_oldest() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_session(&[9; 32], "id-bob", 1_000, 0, 2).await.unwrap();
    for n in 1..=4u8 {
        db.create_session(&[n; 32], "id-ada", 1_000, 0, 2).await.unwrap();
    }
    let mut live = Vec::new();
    for n in 1..=4u8 {
        live.push(db.session(&[n; 32], 0).await.unwrap().is_some());
    }
    assert_eq!(live, [false, false, true, true]);
    assert!(db.session(&[9; 32], 0).await.unwrap().is_some(), "another user's sessions are not counted");
}

#[tokio::test]
async fn migrations_are_recorded_once_and_a_newer_schema_is_refused() {
    let db = TestDb::new(10).await;
    // Several accelerators starting at once on a migrated database, and again.
    let starts: Vec<_> = (0..4).map(|_| db.another(10)).collect();
    for started in futures_util::future::join_all(starts).await {
        drop(started);
    }
    let versions = db.count("SELECT count(*) FROM schema_migrations").await;
    assert_eq!(versions, MIGRATIONS.len() as i64);
    db.client().await.unwrap().batch_execute("INSERT INTO schema_migrations (version) VALUES (1000)").await.unwrap();
    let refused = PgRecords::connect_config(db.scratch.config.clone(), 10, 1).await.err().unwrap();
    assert!(matches!(refused, StoreError::Backend(ref m) if m.contains("newer")), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accelerators_starting_at_once_on_an_empty_database_migrate_it_once() {
    let scratch = Scratch::new().await;
    let config = scratch.config.clone();
    let starts = (0..6).map(|_| {
        let config = config.clone();
        tokio::spawn(async move { PgRecords::connect_config(config, 10, 2).await })
    });
    for started in futures_util::future::join_all(starts).await {
        started.unwrap().expect("every accelerator starts");
    }
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let versions: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(versions, MIGRATIONS.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_secret_is_whichever_was_stored_first() {
    let db = TestDb::new(10).await;
    let others: Vec<PgRecords> = futures_util::future::join_all((0..4).map(|_| db.another(10))).await;
    let others = Arc::new(others);
    let tries = (0..4u8).map(|n| {
        let others = Arc::clone(&others);
        tokio::spawn(async move { others[usize::from(n)].server_secret([n + 1; 32]).await.unwrap() })
    });
    let secrets: Vec<[u8; 32]> = futures_util::future::join_all(tries).await.into_iter().map(Result::unwrap).collect();
    assert!(secrets.iter().all(|s| *s == secrets[0]), "every accelerator got the same secret");
    assert_eq!(db.server_secret([9; 32]).await.unwrap(), secrets[0], "and keeps it");
}

#[tokio::test]
async fn shard_stamps_references_and_collection() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s1", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    let (a, b) = (ShardAddress::of(b"a"), ShardAddress::of(b"b"));
    db.record_upload("id-ada", &a, 10, 100, 100).await.unwrap();
    db.record_upload("id-ada", &b, 20, 100, 100).await.unwrap();
    db.record_upload("id-ada", &b, 20, 50, 100).await.unwrap();
    assert!(db.collectable_shards(u64::MAX, 10).await.unwrap().is_empty(), "pinned by their uploads");
    assert_eq!(db.expire_uploads(100, 10).await.unwrap(), 2);
    let mut old = db.collectable_shards(101, 10).await.unwrap();
    old.sort();
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(old, both);
    assert!(db.collectable_shards(100, 10).await.unwrap().is_empty(), "a stamp never moves back");
    db.record_upload("id-ada", &a, 10, 200, 300).await.unwrap();
    db.record_upload("id-ada", &b, 20, 200, 300).await.unwrap();
    assert_eq!(db.touch_uploads("id-ada", &[b, ShardAddress::of(b"c")], 400).await.unwrap(), [true, false]);
    assert_eq!(db.expire_uploads(300, 10).await.unwrap(), 1, "a's upload ends; b's was moved");

    let file = NewFile {
        space_id: "s1".into(),
        file_id: "f1".into(),
        sealed_record: vec![1; 30],
        shards: vec![a, b].into(),
        max_shard_bytes: u64::MAX,
        created_by: "id-ada".into(),
        created_at_ms: 300,
    };
    db.record_upload("id-ada", &a, 10, 300, 400).await.unwrap();
    let quotas = |space_bytes| Quotas { space_bytes, user_bytes: u64::MAX };
    assert_eq!(
        db.commit_file(&file, quotas(29), u64::MAX).await,
        Err(StoreError::QuotaExceeded { limit: Quota::Space, used: 0, adding: 30, quota: 29 })
    );
    // Refused in one step: nothing changed, the uploads still charged and pinned.
    assert!(db.withdrawn(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), space_cost(4) + 30);
    assert_eq!(db.touch_uploads("id-ada", &[a, b], 400).await.unwrap(), [true, true]);
    assert_eq!(db.commit_file(&file, quotas(30), u64::MAX).await.unwrap().stored_bytes, 30, "each shard counted once");
    assert!(db.collectable_shards(u64::MAX, 10).await.unwrap().is_empty(), "referenced shards are not candidates");
    assert!(db.forget_shards(&[a], u64::MAX).await.unwrap().is_empty(), "a referenced shard is kept");
    let more = NewFile { file_id: "f2".into(), shards: vec![ShardAddress::of(b"gone")].into(), ..file.clone() };
    assert_eq!(
        db.commit_file(&more, Quotas::NONE, u64::MAX).await,
        Err(StoreError::MissingShards { missing: 1, listed: 1 })
    );
    assert_eq!(db.commit_file(&file, Quotas::NONE, u64::MAX).await, Err(StoreError::FileTaken));
    assert_eq!(db.file("s1", "f1", "id-ada").await.unwrap().unwrap().stored_bytes, 30);

    assert!(db.delete_file("s1", "f1", "id-ada").await.unwrap());
    let f1 = Withdrawn::File { space_id: "s1".into(), file_id: "f1".into() };
    assert!(db.files("s1", "id-ada", &ALL).await.unwrap().items.is_empty());
    assert_eq!(db.withdrawn(0, 10).await.unwrap(), std::slice::from_ref(&f1));
    let mut freed = db.unwind(&f1, 10).await.unwrap();
    assert!(freed.done);
    freed.freed.sort();
    assert_eq!(freed.freed, both);
    assert!(!db.delete_file("s1", "f1", "id-ada").await.unwrap());
    assert_eq!(db.forget_shards(&[a, a], u64::MAX).await.unwrap(), [a], "dropped once");
    assert!(!db.shard_recorded(&a).await.unwrap());
    assert!(db.forget_shards(&[b], 150).await.unwrap().is_empty(), "too recent for the collector");
    assert_eq!(db.forget_shards(&[b], 301).await.unwrap(), [b]);
    totals_agree(&db).await;
}

/// `n` shards of `size` bytes that `user_id` uploaded, pinned until `expires_at_ms`.
async fn uploaded(db: &PgRecords, user_id: &str, n: u32, size: u64, expires_at_ms: u64) -> Vec<ShardAddress> {
    let shards: Vec<ShardAddress> = (0..n).map(|i| ShardAddress::of(format!("{user_id}-{i}").as_bytes())).collect();
    for address in &shards {
        db.record_upload(user_id, address, size, 0, expires_at_ms).await.unwrap();
    }
    shards
}

fn new_file(space_id: &str, file_id: &str, created_by: &str, shards: Vec<ShardAddress>) -> NewFile {
    NewFile {
        space_id: space_id.into(),
        file_id: file_id.into(),
        sealed_record: vec![1; 40],
        shards: shards.into(),
        max_shard_bytes: u64::MAX,
        created_by: created_by.into(),
        created_at_ms: 1,
    }
}

async fn drafts(db: &TestDb) -> i64 {
    db.count("SELECT count(*) FROM files WHERE state = 'draft'").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_writes_come_between_the_steps_of_a_commit() {
    let db = Arc::new(TestDb::new(10).await.with_step(4));
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_space("s", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    let shards = uploaded(&db, "id-ada", 400, 10, u64::MAX).await;
    let file = new_file("s", "f", "id-ada", shards);
    let committer = {
        let db = Arc::clone(&db);
        tokio::spawn(async move { db.commit_file(&file, Quotas::NONE, u64::MAX).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while drafts(&db).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the commit never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    db.kv_set("id-bob", "c", "k", &StoredValue::Sealed(vec![1; 29]), u64::MAX).await.unwrap();
    assert_eq!(drafts(&db).await, 1, "bob's write went in while ada's commit was under way");
    let committed = committer.await.unwrap().unwrap();
    assert_eq!(committed.stored_bytes, 4_000);
    assert_eq!(drafts(&db).await, 0);
    let charged = file_cost(4_000, 400, 40) + space_cost(4);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), charged, "the uploads became the file");
    let db = Arc::into_inner(db).unwrap();
    totals_agree(&db).await;
}

#[tokio::test]
async fn a_commit_of_many_steps_is_refused_before_its_first() {
    let db = TestDb::new(10).await.with_step(2);
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    let shards = uploaded(&db, "id-ada", 5, 10, u64::MAX).await;
    let used = db.used_bytes("id-ada").await.unwrap();
    let mut listed = shards.clone();
    listed.push(ShardAddress::of(b"never uploaded"));
    let refusals = [
        (new_file("s", "f", "id-ada", listed), Quotas::NONE),
        (new_file("s", "f", "id-ada", shards.clone()), Quotas { space_bytes: 49, user_bytes: u64::MAX }),
        (new_file("s", "f", "id-ada", shards.clone()), Quotas { space_bytes: u64::MAX, user_bytes: used + 10 }),
        (NewFile { max_shard_bytes: 49, ..new_file("s", "f", "id-ada", shards.clone()) }, Quotas::NONE),
    ];
    for (file, quotas) in refusals {
        let err = db.commit_file(&file, quotas, u64::MAX).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::MissingShards { .. } | StoreError::QuotaExceeded { .. } | StoreError::OverDeclared { .. }
            ),
            "{err:?}"
        );
        assert_eq!(drafts(&db).await, 0, "refused before a draft was opened");
        assert!(db.withdrawn(u64::MAX, 10).await.unwrap().is_empty());
        assert_eq!(db.used_bytes("id-ada").await.unwrap(), used);
        assert_eq!(db.touch_uploads("id-ada", &shards, u64::MAX).await.unwrap(), [true; 5], "the uploads stay");
    }
    db.commit_file(&new_file("s", "f", "id-ada", shards), Quotas::NONE, u64::MAX).await.unwrap();
    totals_agree(&db).await;
}

#[tokio::test]
async fn a_commit_that_never_finished_is_withdrawn_at_its_deadline() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    let shards = uploaded(&db, "id-ada", 5, 10, u64::MAX).await;
    let base = space_cost(4);
    let file = new_file("s", "f", "id-ada", shards.clone());
    // Two steps, then the accelerator stops.
    db.draft_file(&file, 0..2, 100).await.unwrap();
    db.draft_file(&file, 2..4, 100).await.unwrap();
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), base + 50, "settled uploads moved their charge to the draft");
    assert!(db.files("s", "id-ada", &ALL).await.unwrap().items.is_empty());
    assert_eq!(
        db.draft_file(&new_file("s", "f", "id-ada", shards.clone()), 0..1, 100).await,
        Err(StoreError::FileTaken)
    );
    assert!(db.withdrawn(99, 10).await.unwrap().is_empty(), "before its deadline a draft is left alone");
    let f = Withdrawn::File { space_id: "s".into(), file_id: "f".into() };
    assert_eq!(db.withdrawn(100, 10).await.unwrap(), std::slice::from_ref(&f));
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), base + 10, "the draft is refunded; one upload is left");
    assert_eq!(db.seal_draft(&file, Quotas::NONE).await, Err(StoreError::CommitWithdrawn));
    let (mut freed, mut steps) = (Vec::new(), 0);
    loop {
        let step = db.unwind(&f, 2).await.unwrap();
        freed.extend(step.freed);
        steps += 1;
        if step.done {
            break;
        }
    }
    assert!(steps > 1, "taken apart in steps");
    freed.sort();
    let mut settled = shards[..4].to_vec();
    settled.sort();
    assert_eq!(freed, settled);
    assert!(db.withdrawn(100, 10).await.unwrap().is_empty());
    // The id is free again.
    db.record_upload("id-ada", &shards[0], 10, 0, u64::MAX).await.unwrap();
    db.commit_file(&new_file("s", "f", "id-ada", vec![shards[0], shards[4]]), Quotas::NONE, u64::MAX).await.unwrap();
    totals_agree(&db).await;
}

#[tokio::test]
async fn a_space_its_last_member_left_goes_a_step_at_a_time() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    let mut all = Vec::new();
    for f in ["f", "g", "h"] {
        let shards: Vec<ShardAddress> = (0..3).map(|i| ShardAddress::of(format!("{f}{i}").as_bytes())).collect();
        for a in &shards {
            db.record_upload("id-ada", a, 10, 0, u64::MAX).await.unwrap();
        }
        db.commit_file(&new_file("s", f, "id-ada", shards.clone()), Quotas::NONE, u64::MAX).await.unwrap();
        all.extend(shards);
    }
    // h's shards are also used in another space: they stay.
    db.create_space("t", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    for a in &all[6..] {
        db.record_upload("id-ada", a, 10, 0, u64::MAX).await.unwrap();
    }
    db.commit_file(&new_file("t", "h", "id-ada", all[6..].to_vec()), Quotas::NONE, u64::MAX).await.unwrap();
    let kept = db.used_bytes("id-ada").await.unwrap() - 3 * file_cost(30, 3, 40) - space_cost(4);
    assert!(db.leave_space("s", "id-ada").await.unwrap(), "the last member's leaving withdraws the space");
    let spaces: Vec<String> =
        db.spaces_of("id-ada", &ALL).await.unwrap().items.into_iter().map(|m| m.space_id).collect();
    assert_eq!(spaces, ["t"], "gone for everyone at once");
    let files = 3 * file_cost(30, 3, 40);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), kept + files, "the space is refunded; its files as they go");
    let s = Withdrawn::Space { space_id: "s".into() };
    assert_eq!(db.withdrawn(0, 10).await.unwrap(), std::slice::from_ref(&s));
    let (mut freed, mut steps) = (Vec::new(), 0);
    loop {
        let before = db.count("SELECT count(*) FROM file_shards WHERE space_id = 's'").await;
        let step = db.unwind(&s, 2).await.unwrap();
        let after = db.count("SELECT count(*) FROM file_shards WHERE space_id = 's'").await;
        assert!(before - after <= 2, "a step drops at most its limit of references");
        freed.extend(step.freed);
        steps += 1;
        if step.done {
            break;
        }
    }
    assert!(steps > 5, "{steps} steps");
    assert_eq!(db.count("SELECT count(*) FROM file_shards WHERE space_id = 's'").await, 0);
    freed.sort();
    let mut only_s = all[..6].to_vec();
    only_s.sort();
    assert_eq!(freed, only_s, "the shards another space uses stay");
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), kept, "the space and its files are refunded");
    assert!(db.withdrawn(0, 10).await.unwrap().is_empty());
    db.create_space("s", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    totals_agree(&db).await;
}

// The shard keeper's tests (store::keeper), on the records alone: what its
// collection does is expire uploads, take withdrawn things apart, and forget the
// shards nothing needs.

/// One collection as [`crate::store::keeper::ShardKeeper::collect`] runs it, on the
/// records alone. Returns the shards it forgot.
async fn collect(db: &PgRecords, now_ms: u64, stored_before_ms: u64) -> Vec<ShardAddress> {
    while db.expire_uploads(now_ms, 1024).await.unwrap() == 1024 {}
    let mut forgotten = Vec::new();
    for what in db.withdrawn(now_ms, 1024).await.unwrap() {
        loop {
            let step = db.unwind(&what, db.step()).await.unwrap();
            forgotten.extend(db.forget_shards(&step.freed, u64::MAX).await.unwrap());
            if step.done {
                break;
            }
        }
    }
    let candidates = db.collectable_shards(stored_before_ms, 1024).await.unwrap();
    forgotten.extend(db.forget_shards(&candidates, stored_before_ms).await.unwrap());
    forgotten
}

/// A database with users `u` and `v` and a space `s` that `u` owns.
async fn keeper_db() -> TestDb {
    let db = TestDb::new(10).await;
    for id in ["u", "v"] {
        db.create_user(&User { user_id: id.into(), username: id.into(), ..user(id, 0) }).await.unwrap();
    }
    db.create_space("s", b"n", "u", 0, u64::MAX).await.unwrap();
    db
}

/// `user_id` uploads `bytes` at `now_ms`, pinned for 100 ms.
async fn upload(db: &PgRecords, user_id: &str, bytes: &[u8], now_ms: u64) -> ShardAddress {
    let address = ShardAddress::of(bytes);
    db.record_upload(user_id, &address, bytes.len() as u64, now_ms, now_ms + 100).await.unwrap();
    address
}

fn keeper_file(id: &str, by: &str, shards: &[ShardAddress]) -> NewFile {
    NewFile { sealed_record: vec![1], created_at_ms: 0, ..new_file("s", id, by, shards.to_vec()) }
}

#[tokio::test]
async fn collection_takes_only_unpinned_unreferenced_shards() {
    let db = keeper_db().await;
    let a = upload(&db, "u", b"a", 100).await;
    let b = upload(&db, "u", b"b", 100).await;
    let c = upload(&db, "u", b"c", 100).await;
    db.commit_file(&keeper_file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    // Uploading `b` again moves its deadline.
    upload(&db, "u", b"b", 500).await;
    assert_eq!(collect(&db, 200, 200).await, [c]);
    assert!(db.shard_recorded(&a).await.unwrap() && db.shard_recorded(&b).await.unwrap());
    // Only the uploader's `missing` sees and moves the upload.
    assert_eq!(db.touch_uploads("v", &[b], 10_000).await.unwrap(), [false]);
    assert_eq!(db.touch_uploads("u", &[b, c], 1000).await.unwrap(), [true, false]);
    assert!(collect(&db, 600, 600).await.is_empty());
    assert_eq!(collect(&db, 1000, 1000).await, [b]);
    // A commit after its shard was collected is refused, never dangling.
    assert_eq!(
        db.commit_file(&keeper_file("g", "u", &[b]), Quotas::NONE, u64::MAX).await,
        Err(StoreError::MissingShards { missing: 1, listed: 1 })
    );
}

#[tokio::test]
async fn a_commit_takes_only_its_writers_uploads_or_its_spaces_shards() {
    let db = keeper_db().await;
    let invite =
        Invite { space_id: "s".into(), secret_hash: [1; 32], role: Role::Writer, expires_at_ms: u64::MAX, max_uses: 1 };
    db.create_invite("u", &invite, 0).await.unwrap();
    db.join_space("s", &[1; 32], "v", 0).await.unwrap();
    let a = upload(&db, "u", b"a", 0).await;
    let b = upload(&db, "v", b"b", 0).await;
    // `v` cannot pin `u`'s upload by naming it.
    assert_eq!(
        db.commit_file(&keeper_file("f", "v", &[a, b]), Quotas::NONE, u64::MAX).await,
        Err(StoreError::MissingShards { missing: 1, listed: 2 })
    );
    db.commit_file(&keeper_file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    // Once a file of the space uses it, any writer there may list it too.
    db.commit_file(&keeper_file("g", "v", &[a, b]), Quotas::NONE, u64::MAX).await.unwrap();
    totals_agree(&db).await;
}

#[tokio::test]
async fn uploads_are_charged_until_committed_or_expired() {
    let db = keeper_db().await;
    let base = db.used_bytes("u").await.unwrap();
    let a = upload(&db, "u", &[7; 1000], 0).await;
    assert_eq!(db.used_bytes("u").await.unwrap(), base + 1000);
    upload(&db, "u", &[7; 1000], 50).await;
    assert_eq!(db.used_bytes("u").await.unwrap(), base + 1000, "an upload again is not charged twice");
    let committed = db.commit_file(&keeper_file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    let charged = file_cost(1000, 1, 1);
    assert_eq!(committed.stored_bytes, 1000);
    assert_eq!(db.used_bytes("u").await.unwrap(), base + charged, "the upload became the file");
    upload(&db, "u", b"z", 0).await;
    collect(&db, 1000, 0).await;
    assert_eq!(db.used_bytes("u").await.unwrap(), base + charged, "an expired upload is refunded");
    db.delete_file("s", "f", "u").await.unwrap();
    assert_eq!(db.used_bytes("u").await.unwrap(), base, "a deleted file is refunded");
    totals_agree(&db).await;
}

#[tokio::test]
async fn freeing_skips_shards_referenced_meanwhile() {
    let db = keeper_db().await;
    let a = upload(&db, "u", b"a", 0).await;
    db.commit_file(&keeper_file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    db.commit_file(&keeper_file("g", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    let withdrawn = |id: &str| Withdrawn::File { space_id: "s".into(), file_id: id.into() };
    assert!(db.delete_file("s", "f", "u").await.unwrap());
    assert_eq!(db.unwind(&withdrawn("f"), 10).await.unwrap(), Unwound { freed: vec![], done: true }, "g uses it");
    // Even handed a stale candidate list, forgetting checks again.
    assert!(db.forget_shards(&[a], u64::MAX).await.unwrap().is_empty());
    assert!(db.delete_file("s", "g", "u").await.unwrap());
    assert_eq!(db.unwind(&withdrawn("g"), 10).await.unwrap().freed, [a]);
    assert_eq!(db.forget_shards(&[a], u64::MAX).await.unwrap(), [a]);
}

#[tokio::test]
async fn the_collector_takes_apart_commits_that_never_finished() {
    let db = keeper_db().await;
    let base = db.used_bytes("u").await.unwrap();
    let (a, b) = (upload(&db, "u", b"a", 0).await, upload(&db, "u", b"b", 0).await);
    // The first step of a commit, then the accelerator stopped.
    db.draft_file(&keeper_file("f", "u", &[a, b]), 0..1, 100).await.unwrap();
    assert!(collect(&db, 50, 0).await.is_empty(), "before its deadline the draft pins its shard");
    assert_eq!(db.used_bytes("u").await.unwrap(), base + 2, "one upload, one settled into the draft");
    assert_eq!(collect(&db, 100, 0).await, [a], "at its deadline the draft goes, and its shard");
    assert!(db.shard_recorded(&b).await.unwrap());
    assert_eq!(db.used_bytes("u").await.unwrap(), base, "the draft and the expired upload are refunded");
    // Nothing of it is left: its id is free again.
    db.draft_file(&keeper_file("f", "u", &[]), 0..0, 200).await.unwrap();
}

// What only writers on several accelerators at once can show.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_kv_writes_of_one_user_get_every_sequence_number_once() {
    const TASKS: usize = 8;
    const WRITES: usize = 25;
    let db = TestDb::new(10_000).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    // Two accelerators, each with its own pool; every task on a connection of its own.
    let accelerators = Arc::new([db.another(10_000).await, db.another(10_000).await]);
    let tasks = (0..TASKS).map(|t| {
        let accelerators = Arc::clone(&accelerators);
        tokio::spawn(async move {
            let db = &accelerators[t % 2];
            let mut seqs = Vec::new();
            for w in 0..WRITES {
                // Some keys shared by every task, some of its own.
                let id = if w % 2 == 0 { format!("shared{}", w % 5) } else { format!("t{t}-{w}") };
                let value = StoredValue::Sealed(vec![t as u8; 10 + w]);
                seqs.push(db.kv_set("id-ada", "c", &id, &value, u64::MAX).await.unwrap());
                if w % 7 == 6 {
                    if let Some(seq) = db.kv_delete("id-ada", "c", &id).await.unwrap() {
                        seqs.push(seq);
                    }
                }
            }
            seqs
        })
    });
    let mut seqs: Vec<u64> = futures_util::future::join_all(tasks).await.into_iter().flat_map(Result::unwrap).collect();
    seqs.sort_unstable();
    let n = seqs.len() as u64;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "every sequence number handed out exactly once");
    let window = db.changes_after("id-ada", 0, 100_000).await.unwrap();
    assert_eq!(window.head, n);
    let logged: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
    assert!(logged.windows(2).all(|w| w[0] < w[1]));
    let keys = db.count("SELECT count(DISTINCT (collection, id)) FROM kv_changes").await;
    assert_eq!(logged.len() as i64, keys, "one change per key");
    // The log's latest change of each key is what the key holds.
    for change in &window.changes {
        assert_eq!(db.kv_get("id-ada", &change.collection, &change.id).await.unwrap(), change.value);
    }
    totals_agree(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_into_one_space_never_pass_its_quota() {
    const FILES: u32 = 12;
    const FITS: u64 = 7;
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_space("s", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    let invite =
        Invite { space_id: "s".into(), secret_hash: [1; 32], role: Role::Writer, expires_at_ms: u64::MAX, max_uses: 1 };
    db.create_invite("id-ada", &invite, 0).await.unwrap();
    db.join_space("s", &[1; 32], "id-bob", 0).await.unwrap();
    // Each file is 4 shards of 25 bytes; the space has room for FITS of them. One
    // accelerator commits in steps of 2 shards (drafts, then a seal), the other whole.
    let quotas = Quotas { space_bytes: FITS * 100, user_bytes: u64::MAX };
    let accelerators = Arc::new([db.another(10).await.with_step(2), db.another(10).await]);
    let mut commits = Vec::new();
    for (n, by) in ["id-ada", "id-bob"].into_iter().enumerate() {
        for f in 0..FILES {
            let shards: Vec<ShardAddress> =
                (0..4).map(|i| ShardAddress::of(format!("{by}-{f}-{i}").as_bytes())).collect();
            for a in &shards {
                db.record_upload(by, a, 25, 0, u64::MAX).await.unwrap();
            }
            let file = new_file("s", &format!("{by}-{f}"), by, shards);
            let accelerators = Arc::clone(&accelerators);
            commits.push(tokio::spawn(async move { accelerators[n].commit_file(&file, quotas, u64::MAX).await }));
        }
    }
    let mut committed = 0;
    for result in futures_util::future::join_all(commits).await {
        match result.unwrap() {
            Ok(file) => {
                assert_eq!(file.stored_bytes, 100);
                committed += 1;
            }
            Err(StoreError::QuotaExceeded { limit: Quota::Space, .. }) => {}
            Err(err) => panic!("{err:?}"),
        }
    }
    assert_eq!(committed, FITS, "exactly as many as fit");
    assert_eq!(db.space_usage("s", "id-bob").await.unwrap(), FITS * 100);
    for what in db.withdrawn(u64::MAX, 100).await.unwrap() {
        while !db.unwind(&what, 100).await.unwrap().done {}
    }
    assert_eq!(drafts(&db).await, 0, "every refused draft was withdrawn and taken apart");
    totals_agree(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_use_an_invite_exactly_as_often_as_it_allows() {
    let db = TestDb::new(10).await;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", 0, u64::MAX).await.unwrap();
    let invite =
        Invite { space_id: "s".into(), secret_hash: [1; 32], role: Role::Reader, expires_at_ms: u64::MAX, max_uses: 3 };
    db.create_invite("id-ada", &invite, 0).await.unwrap();
    for n in 0..8u8 {
        db.create_user(&user(&format!("j{n}"), n + 10)).await.unwrap();
    }
    let accelerators = Arc::new([db.another(10).await, db.another(10).await]);
    let joins = (0..8u8).map(|n| {
        let accelerators = Arc::clone(&accelerators);
        tokio::spawn(
            async move { accelerators[usize::from(n % 2)].join_space("s", &[1; 32], &format!("id-j{n}"), 0).await },
        )
    });
    let results: Vec<_> = futures_util::future::join_all(joins).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert!(results.iter().all(|r| r.is_ok() || *r == Err(StoreError::InviteUsedUp)), "{results:?}");
    assert_eq!(db.members("s", "id-ada", &ALL).await.unwrap().items.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unwinds_of_files_sharing_a_shard_free_it() {
    // Two files share every shard; both are deleted and taken apart at once on two
    // accelerators: whichever drops a shard's last reference reports it freed.
    let db = keeper_db().await;
    let shards: Vec<ShardAddress> = (0..20u8).map(|i| ShardAddress::of(&[i])).collect();
    for a in &shards {
        db.record_upload("u", a, 1, 0, u64::MAX).await.unwrap();
    }
    db.commit_file(&keeper_file("f", "u", &shards), Quotas::NONE, u64::MAX).await.unwrap();
    db.commit_file(&keeper_file("g", "u", &shards), Quotas::NONE, u64::MAX).await.unwrap();
    db.delete_file("s", "f", "u").await.unwrap();
    db.delete_file("s", "g", "u").await.unwrap();
    let accelerators = Arc::new([db.another(10).await, db.another(10).await]);
    let unwinds = ["f", "g"].into_iter().enumerate().map(|(n, id)| {
        let accelerators = Arc::clone(&accelerators);
        let what = Withdrawn::File { space_id: "s".into(), file_id: id.into() };
        tokio::spawn(async move {
            let mut freed = Vec::new();
            loop {
                let step = accelerators[n].unwind(&what, 1).await.unwrap();
                freed.extend(step.freed);
                if step.done {
                    return freed;
                }
            }
        })
    });
    let mut freed: Vec<ShardAddress> =
        futures_util::future::join_all(unwinds).await.into_iter().flat_map(Result::unwrap).collect();
    freed.sort();
    let mut all = shards.clone();
    all.sort();
    assert_eq!(freed, all, "every shard freed once, by whichever unwinder came last");
}
