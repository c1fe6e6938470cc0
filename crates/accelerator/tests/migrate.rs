//! Moving up (`accelerator migrate`): an embedded deployment, filled over HTTP the
//! way the SDK fills it, is copied into PostgreSQL and a moto S3 bucket, and an
//! accelerator on the copy serves every user what they had; a migration into a
//! database with data is refused, and verification catches a damaged target.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use coffer_accelerator::migrate::{self, MigrateError, Options, Problem};
use coffer_accelerator::store::objects::ObjectShards;
use coffer_accelerator::store::postgres::PgRecords;
use coffer_accelerator::store::shards::ShardStore;
use coffer_accelerator::store::sqlite::SqliteRecords;
use coffer_accelerator::store::{Accounts, Files, Kv, StoredValue, User};
use coffer_core::ErrorCode;
use coffer_core::epoch;
use coffer_core::proto::KvLegacyResponse;
use coffer_core::proto::storage::{FileEntry, MembersResponse, SpaceInfo, SpaceKeysResponse, SpaceListResponse};
use coffer_core::recovery::RecoveryCode;
use coffer_core::shard::ShardAddress;
use coffer_core::space::SpaceKey;
use common::moto::Moto;
use common::postgres::Scratch;
use common::*;
use object_store::ObjectStore as _;
use object_store::path::Path as Key;

/// What a deployment held when it stopped, to compare the migrated one with.
struct Before {
    ada: Account,
    bob: Account,
    space: TestSpace,
    /// Ada's second space, listed after the first.
    later_space: String,
    /// The cursor the embedded accelerator gave for the page after the first space.
    cursor: String,
    file: FileEntry,
    file_shards: Vec<(ShardAddress, Vec<u8>)>,
    deleted_file: String,
    ada_seq: u64,
    bob_seq: u64,
    space_used: u64,
    /// The space's key after its one rotation (epoch 1).
    rotated_key: SpaceKey,
    /// Each user's `used_bytes`, read from the SQLite file.
    used_bytes: BTreeMap<String, i64>,
    /// Ada's recovery code.
    code: RecoveryCode,
    /// The wrapped roots recovery challenges carried: ada's, under her code, and
    /// bob's, made up (he has no code).
    recovery_roots: [String; 2],
}

/// Fills an embedded accelerator through its API, then stops it.
async fn populated() -> (tempfile::TempDir, Before) {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "ada's password").await;
    let bob = sign_up(&api, "bob", "bob's password").await;
    ada.set(&api, "notes", "n1", r#"{"text":"sealed secret"}"#, true).await;
    ada.set(&api, "prefs", "theme", r#""dark""#, false).await;
    ada.set(&api, "notes", "n2", r#"{"text":"gone soon"}"#, true).await;
    ada.delete(&api, "notes", "n2").await;
    let ada_seq = ada.set(&api, "notes", "n1", r#"{"text":"sealed secret, edited"}"#, true).await;
    let bob_seq = bob.set(&api, "notes", "b1", r#"{"text":"bob's"}"#, true).await;

    let space = ada.create_space(&api).await;
    let invite = ada.invite(&api, &space, coffer_core::proto::storage::Role::Writer, None, Some(2)).await.unwrap();
    bob.join(&api, &invite.encode().unwrap()).await.unwrap();
    let file_shards = shards_of(&vec![7u8; 200_000]);
    ada.upload(&api, &file_shards).await;
    let file = ada.commit(&api, &space, &addresses(&file_shards)).await.unwrap();
    let doomed = shards_of(b"a file that is deleted");
    bob.upload(&api, &doomed).await;
    let deleted = bob.commit(&api, &space, &addresses(&doomed)).await.unwrap();
    assert!(bob.delete_file(&api, &space, &deleted.file_id).await.unwrap());
    // An upload not committed yet: it pins its shard and is charged to bob.
    bob.upload(&api, &shards_of(b"pending")[..1]).await;
    // Cy came and went, so the space's key rotated once: an epoch, its link, a key
    // sealed to each member.
    let cy = sign_up(&api, "cy", "cy's password").await;
    cy.join(&api, &invite.encode().unwrap()).await.unwrap();
    cy.post_empty(&api, &space.path("/leave"), &serde_json::json!({})).await.unwrap();
    let listed: MembersResponse = ada.get_json(&api, &space.path("/members")).await.unwrap();
    let fresh = SpaceKey::from_bytes(random());
    let mut draw = |buf: &mut [u8]| getrandom::fill(buf).unwrap();
    let rotation =
        epoch::rotate(&space.id, (0, &space.key), &listed.members, Some(cy.user_id()), "Shared", fresh, &mut draw)
            .unwrap();
    let rotated: SpaceInfo = api.call(&space.path("/rotate"), Some(ada.token()), &rotation.request).await.unwrap();
    assert_eq!(rotated.epoch, 1);
    let later_space = ada.create_space(&api).await.id;
    let (_, page) = api.get("/v1/spaces?limit=1", Some(ada.token())).await;
    let page: SpaceListResponse = serde_json::from_value(page).unwrap();
    let space_used = ada.used(&api, &space).await.unwrap();
    // Ada made a recovery code; bob did not.
    let code = RecoveryCode::from_bytes(random());
    let made = set_recovery_request(&api, "ada", &ada.root, &code).await;
    ada.post_empty(&api, "/v1/auth/recovery", &made).await.unwrap();
    let mut recovery_roots = [String::new(), String::new()];
    for (name, root) in ["ada", "bob"].into_iter().zip(&mut recovery_roots) {
        *root = recover_challenge(&api, name).await.unwrap().wrapped_root;
    }
    assert_eq!(recovery_roots[0], made.wrapped_root);

    let dir = server.stop().await;
    // Bob's key is from before sealed names: it moves as a legacy key. Ada's stand
    // for keys under sealed names, which are not (their plain names made them legacy
    // as they were set).
    let conn = rusqlite::Connection::open(dir.path().join("accelerator.sqlite3")).unwrap();
    conn.execute("UPDATE kv SET legacy_name = (user_id = ?1)", [bob.user_id()]).unwrap();
    drop(conn);
    let conn = rusqlite::Connection::open_with_flags(
        dir.path().join("accelerator.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let used_bytes = conn
        .prepare("SELECT user_id, used_bytes FROM users")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(conn);
    let before = Before {
        ada,
        bob,
        space,
        later_space,
        cursor: page.next.expect("a second page"),
        file,
        file_shards,
        deleted_file: deleted.file_id,
        ada_seq,
        bob_seq,
        space_used,
        rotated_key: rotation.key,
        used_bytes,
        code,
        recovery_roots,
    };
    (dir, before)
}

/// Every file under `dir` with a hash of its bytes: what "untouched" compares. The
/// `-shm` file is left out: it is SQLite's shared-memory index of the log, which any
/// reader may rebuild, and holds no data.
fn snapshot(dir: &Path) -> BTreeMap<String, ShardAddress> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if !path.to_string_lossy().ends_with("-shm") {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, ShardAddress::of(&std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

/// A bucket on `moto` and the store on it, under a prefix.
async fn bucket(moto: &Moto, name: &str) -> (ObjectShards, String) {
    (moto.shards(name, "coffer").await, format!("s3://{name}/coffer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_embedded_deployment_moves_to_postgres_and_s3() {
    let (dir, mut before) = populated().await;
    let untouched = snapshot(dir.path());
    let moto = Moto::start();
    let (target, url) = bucket(&moto, "moved").await;
    let db = Scratch::new().await;

    let mut tables_seen = Vec::new();
    // Tiny batches and few shards at once, so every batching path runs.
    let small = Options { batch_rows: 2, concurrency: 3, ..Options::default() };
    let report = migrate::migrate(dir.path(), &db.url(), &target, &small, |p| {
        if let migrate::Progress::Table { phase: migrate::Phase::Copy, table, .. } = p {
            tables_seen.push(table);
        }
    })
    .await
    .unwrap();
    println!("{report}");
    assert_eq!(snapshot(dir.path()), untouched, "the source is left as it was");
    let rows: BTreeMap<&str, u64> = report.verified.tables.iter().map(|t| (t.table, t.rows)).collect();
    assert_eq!(rows["users"], 3);
    assert_eq!(rows["server_secret"], 1);
    assert_eq!(rows["uploads"], 1);
    assert_eq!(rows["spaces"], 2);
    assert_eq!(rows["members"], 3);
    assert_eq!(rows["epoch_links"], 1);
    assert!(rows["sessions"] >= 3 && rows["kv"] == 3 && rows["kv_changes"] == 4, "{rows:?}");
    assert_eq!(tables_seen.len(), report.verified.tables.len(), "progress named every table");
    assert_eq!(report.shards_copied, report.verified.shards);
    assert!(report.verified.shards >= 7, "the file's six and the pending upload's");
    // Verifying again, alone, finds the same.
    let again = migrate::verify(dir.path(), &db.url(), &target, &Options::default(), |_| {}).await.unwrap();
    assert_eq!(again, report.verified);

    let options: Vec<(String, String)> = moto.options().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let server =
        TestServer::start_on(tempfile::tempdir().unwrap(), Data::Remote { db, shards: url, shared_dir: None }, |c| {
            c.shard_options = options
        })
        .await;
    let api = server.api();

    // Sessions came along: a device signed in before is still signed in.
    assert_eq!(before.ada.get(&api, "notes", "n1").await.as_deref(), Some(r#"{"text":"sealed secret, edited"}"#));
    // And passwords work.
    before.ada.session = sign_in(&api, "ada", "ada's password").await.unwrap();
    before.bob.session = sign_in(&api, "bob", "bob's password").await.unwrap();
    assert_eq!(sign_in(&api, "ada", "not ada's password").await.unwrap_err().code, ErrorCode::Unauthorized);
    let (ada, bob) = (&before.ada, &before.bob);
    assert_eq!(ada.session.kv_seq, before.ada_seq);
    assert_eq!(bob.session.kv_seq, before.bob_seq);
    assert_eq!(ada.get(&api, "notes", "n1").await.as_deref(), Some(r#"{"text":"sealed secret, edited"}"#));
    assert_eq!(ada.get(&api, "prefs", "theme").await.as_deref(), Some(r#""dark""#));
    assert_eq!(ada.get(&api, "notes", "n2").await, None, "a deleted value stays deleted");
    assert_eq!(bob.get(&api, "notes", "b1").await.as_deref(), Some(r#"{"text":"bob's"}"#));
    assert_eq!(ada.list(&api, "notes").await, ["n1"]);
    // Which keys are legacy came along.
    for (account, legacy) in [(ada, vec![]), (bob, vec![("notes", "b1")])] {
        let answer: KvLegacyResponse = account.get_json(&api, "/v1/kv/legacy").await.unwrap();
        let keys: Vec<(&str, &str)> = answer.keys.iter().map(|k| (k.collection.as_str(), k.id.as_str())).collect();
        assert_eq!(keys, legacy, "{}", account.username);
    }

    // The feed replays the same log, and goes on from the same sequence number.
    let (mut feed, head) = Feed::open(&server, ada.token(), Some(0)).await;
    assert_eq!(head, before.ada_seq);
    let mut replayed = Vec::new();
    while replayed.last() != Some(&head) {
        replayed.push(feed.change().await.seq);
    }
    assert_eq!(replayed.len(), 3, "theme, the deletion of n2 and n1's latest: {replayed:?}");
    let next = ada.set(&api, "notes", "n3", "3", false).await;
    assert_eq!(next, head + 1);
    assert_eq!(feed.change().await.seq, next);
    let (_feed, bob_head) = Feed::open(&server, bob.token(), Some(before.bob_seq)).await;
    assert_eq!(bob_head, before.bob_seq);

    // Files: the live one with its shards, byte for byte; the deleted one gone.
    let space = &before.space;
    assert_eq!(ada.files(&api, space).await.unwrap(), std::slice::from_ref(&before.file));
    assert_eq!(bob.files(&api, space).await.unwrap(), std::slice::from_ref(&before.file));
    let fetched = api.fetch_shards(&addresses(&before.file_shards)).await;
    for ((_, bytes), got) in before.file_shards.iter().zip(fetched) {
        assert_eq!(got.as_deref(), Some(&bytes[..]));
    }
    let gone = ada.get_json::<FileEntry>(&api, &space.path(&format!("/files/{}", before.deleted_file))).await;
    assert_eq!(gone.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(ada.used(&api, space).await.unwrap(), before.space_used);
    // The key epochs came along: bob opens the key sealed to him, and it is the one
    // the rotation made.
    let keys: SpaceKeysResponse = bob.get_json(&api, &space.path("/keys")).await.unwrap();
    assert_eq!((keys.epoch, keys.rotation_due, keys.links.len()), (1, false, 1));
    let sealed = coffer_core::b64::decode(&keys.sealed_key.unwrap()).unwrap();
    let key = epoch::open_epoch_key(&bob.user_keys(), &space.id, 1, bob.user_id(), &sealed).unwrap();
    assert_eq!(key, before.rotated_key);
    let members: MembersResponse = bob.get_json(&api, &space.path("/members")).await.unwrap();
    assert!(members.members.iter().all(|m| m.public_key.is_some() && m.roster_mac.is_some()));

    // A cursor the embedded accelerator handed out still pages on.
    let (_, page) = api.get(&format!("/v1/spaces?limit=1&after={}", before.cursor), Some(ada.token())).await;
    let page: SpaceListResponse = serde_json::from_value(page).unwrap();
    assert_eq!(page.spaces.iter().map(|s| s.space_id.as_str()).collect::<Vec<_>>(), [before.later_space.as_str()]);
    // New rows come after the copied ones (the identity sequences moved on).
    let newer = ada.create_space(&api).await;
    let (_, all) = api.get("/v1/spaces", Some(ada.token())).await;
    let all: SpaceListResponse = serde_json::from_value(all).unwrap();
    let ids: Vec<&str> = all.spaces.iter().map(|s| s.space_id.as_str()).collect();
    assert_eq!(ids, [space.id.as_str(), before.later_space.as_str(), newer.id.as_str()]);

    // What each user is charged came along.
    let Data::Remote { db, .. } = &server.data else { unreachable!() };
    let records = PgRecords::connect(&db.url(), 100).await.unwrap();
    let n3_cost = coffer_accelerator::store::kv_cost(
        "notes",
        "n3",
        &records.kv_get(ada.user_id(), "notes", "n3").await.unwrap().unwrap(),
    );
    let newer_cost =
        coffer_accelerator::store::space_cost(coffer_core::b64::decode(&all.spaces[2].sealed_name).unwrap().len());
    assert_eq!(
        records.used_bytes(ada.user_id()).await.unwrap() as i64,
        before.used_bytes[ada.user_id()] + (n3_cost + newer_cost) as i64
    );
    assert_eq!(records.used_bytes(bob.user_id()).await.unwrap() as i64, before.used_bytes[bob.user_id()]);

    // Ada's recovery code came along, and bob's made-up root is the same (the server
    // secret came along): a stranger sees no change. The code recovers.
    for (name, root) in ["ada", "bob"].into_iter().zip(&before.recovery_roots) {
        assert_eq!(&recover_challenge(&api, name).await.unwrap().wrapped_root, root, "{name}");
    }
    let (_, root) = recover(&api, "ada", &before.code, "ada's new password").await.unwrap();
    assert_eq!(root.as_bytes(), ada.root.as_bytes());
    sign_in(&api, "ada", "ada's new password").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_with_data_is_refused_and_left_alone() {
    let moto = Moto::start();
    let (target, _) = bucket(&moto, "refusing").await;
    let db = Scratch::new().await;
    let records = PgRecords::connect(&db.url(), 100).await.unwrap();
    let carol = User {
        user_id: "carol-id".into(),
        username: "carol".into(),
        credentials: coffer_accelerator::store::Credentials {
            salt: [1; 16],
            kdf: fast_kdf(),
            login_public_key: [2; 32],
            wrapped_root: vec![3; 61],
        },
        kv_seq: 0,
        user_public_key: Some([9; 32]),
        recovery: None,
    };
    records.create_user(&carol).await.unwrap();
    records
        .kv_set("carol-id", "c", "k", &StoredValue::Plain { json: "1".into(), mac: [0; 32] }, u64::MAX)
        .await
        .unwrap();

    let (dir, before) = populated().await;
    let err = migrate::migrate(dir.path(), &db.url(), &target, &Options::default(), |_| {}).await.unwrap_err();
    assert!(matches!(err, MigrateError::TargetNotEmpty { table: "users" }), "{err}");
    assert!(err.to_string().contains("migrate only into a new database"), "{err}");
    // Nothing was added: no user, no shard.
    assert!(records.user_by_name("ada").await.unwrap().is_none());
    assert!(records.user_by_name("carol").await.unwrap().is_some());
    assert!(records.kv_get("carol-id", "c", "k").await.unwrap().is_some());
    assert_eq!(target.size(&before.file_shards[0].0).await.unwrap(), None);
    let client = db.client().await;
    let users: i64 = client.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(users, 1);

    // A migrated target is refused a second time too.
    let fresh = Scratch::new().await;
    migrate::migrate(dir.path(), &fresh.url(), &target, &Options::default(), |_| {}).await.unwrap();
    let again = migrate::migrate(dir.path(), &fresh.url(), &target, &Options::default(), |_| {}).await.unwrap_err();
    assert!(matches!(again, MigrateError::TargetNotEmpty { .. }), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verification_catches_a_damaged_target() {
    let (dir, before) = populated().await;
    let moto = Moto::start();
    let (target, _) = bucket(&moto, "damaged").await;
    let db = Scratch::new().await;
    migrate::migrate(dir.path(), &db.url(), &target, &Options::default(), |_| {}).await.unwrap();

    // One shard overwritten with other bytes of its length, one removed, behind
    // Coffer's back; one record changed.
    let raw = moto.raw("damaged");
    let key = |a: &ShardAddress| Key::from(format!("coffer/{}/{}", a.fan_out(), a.to_hex()));
    let (corrupt, bytes) = &before.file_shards[0];
    let mut flipped = bytes.clone();
    flipped[0] ^= 1;
    raw.put(&key(corrupt), Bytes::from(flipped).into()).await.unwrap();
    let removed = before.file_shards[1].0;
    raw.delete(&key(&removed)).await.unwrap();
    db.client()
        .await
        .batch_execute("UPDATE users SET used_bytes = used_bytes + 1 WHERE username = 'bob'")
        .await
        .unwrap();

    let err = migrate::verify(dir.path(), &db.url(), &target, &Options::default(), |_| {}).await.unwrap_err();
    let MigrateError::Mismatch(problems) = &err else { panic!("{err}") };
    assert!(problems.contains(&Problem::ShardHash(*corrupt)), "{err}");
    assert!(problems.contains(&Problem::ShardMissing(removed)), "{err}");
    assert!(problems.contains(&Problem::Checksum { table: "users" }), "{err}");
    assert_eq!(problems.len(), 3, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_accelerator_is_refused() {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    ada.set(&api, "c", "k", "1", true).await;
    let moto_dir = tempfile::tempdir().unwrap();
    let target = ObjectShards::open_dir(moto_dir.path()).unwrap();
    let err =
        migrate::migrate(server.dir.path(), "postgres://nobody@127.0.0.1:1/none", &target, &Options::default(), |_| {})
            .await
            .unwrap_err();
    assert!(matches!(err, MigrateError::SourceBusy(_)), "{err}");
    assert!(err.to_string().contains("an accelerator is running"), "{err}");
    // Nor does a second accelerator start there.
    let second = coffer_accelerator::backends::DirLock::exclusive(server.dir.path()).unwrap_err();
    assert!(second.to_string().contains("in use by another accelerator"), "{second}");
    // Once it stops, the migration may read it.
    let dir = server.stop().await;
    assert!(coffer_accelerator::backends::DirLock::shared(dir.path()).unwrap().is_some());
}

/// Times a migration of many kv values and some MiB of shards (written through the
/// store, not HTTP, to be quick): `cargo test --test migrate -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement; run by hand"]
async fn measure() {
    const USERS: usize = 10;
    const VALUES: usize = 10_000;
    const SHARDS: usize = 64;
    const SHARD_BYTES: usize = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    {
        let records = SqliteRecords::open(dir.path(), 100_000).unwrap();
        let shards = ObjectShards::embedded(dir.path()).unwrap();
        for u in 0..USERS {
            let user = User {
                user_id: format!("user-{u}"),
                username: format!("user{u}"),
                credentials: coffer_accelerator::store::Credentials {
                    salt: [1; 16],
                    kdf: fast_kdf(),
                    login_public_key: [2; 32],
                    wrapped_root: vec![3; 61],
                },
                kv_seq: 0,
                user_public_key: Some([9; 32]),
                recovery: None,
            };
            records.create_user(&user).await.unwrap();
        }
        let mut writes = Vec::new();
        for i in 0..VALUES {
            let records = records.clone();
            writes.push(tokio::spawn(async move {
                let value = StoredValue::Sealed(vec![i as u8; 200]);
                records.kv_set(&format!("user-{}", i % USERS), "c", &format!("k{i}"), &value, u64::MAX).await.unwrap();
            }));
        }
        for w in writes {
            w.await.unwrap();
        }
        for s in 0..SHARDS {
            let mut bytes = vec![0u8; SHARD_BYTES];
            bytes[..8].copy_from_slice(&(s as u64).to_be_bytes());
            let address = ShardAddress::of(&bytes);
            shards.put(&address, Bytes::from(bytes)).await.unwrap();
            records.record_upload("user-0", &address, SHARD_BYTES as u64, 0, u64::MAX).await.unwrap();
        }
    }
    let moto = Moto::start();
    let (target, _) = bucket(&moto, "measured").await;
    let db = Scratch::new().await;
    let started = Instant::now();
    let report = migrate::migrate(dir.path(), &db.url(), &target, &Options::default(), |_| {}).await.unwrap();
    println!("{report}");
    println!(
        "{VALUES} kv values, {SHARDS} × {} KiB shards: {:.2} s",
        SHARD_BYTES / 1024,
        started.elapsed().as_secs_f64()
    );
}
