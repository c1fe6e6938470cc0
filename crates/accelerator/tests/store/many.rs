//! What only writers side by side can show: sequence numbers, quotas, invite uses
//! and freeing hold under many writers at once, on two accelerators where the
//! backend serves several (PostgreSQL), on one where it serves one (SQLite).

use std::sync::Arc;

use coffer_accelerator::store::{Invite, PageRequest, Quota, Quotas, StoreError, StoredValue, User, Withdrawn};
use coffer_core::proto::storage::Role;
use coffer_core::shard::ShardAddress;

use super::records::{drafts, new_file};
use super::{Backend, Kind, Options, user};

/// A page with every entry a case makes.
const ALL: PageRequest = PageRequest { after: None, limit: 1000 };

pub async fn concurrent_kv_writes_of_one_user_get_every_sequence_number_once(kind: Kind) {
    const TASKS: usize = 8;
    const WRITES: usize = 25;
    let b = Backend::open(kind, Options { retain: 10_000, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    // Two accelerators, each with its own pool; every task on a connection of its own.
    let accelerators = Arc::new([b.another(1024).await, b.another(1024).await]);
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
    let keys = b.count("SELECT count(*) FROM (SELECT DISTINCT collection, id FROM kv_changes) AS keys").await;
    assert_eq!(logged.len() as i64, keys, "one change per key");
    // The log's latest change of each key is what the key holds.
    for change in &window.changes {
        assert_eq!(db.kv_get("id-ada", &change.collection, &change.id).await.unwrap(), change.value);
    }
}

pub async fn concurrent_commits_into_one_space_never_pass_its_quota(kind: Kind) {
    const FILES: u32 = 12;
    const FITS: u64 = 7;
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let invite =
        Invite { space_id: "s".into(), secret_hash: [1; 32], role: Role::Writer, expires_at_ms: u64::MAX, max_uses: 1 };
    db.create_invite("id-ada", &invite, 0, 0).await.unwrap();
    db.join_space("s", &[1; 32], "id-bob", &[4; 32], 0).await.unwrap();
    // Each file is 4 shards of 25 bytes; the space has room for FITS of them. One
    // accelerator commits in steps of 2 shards (drafts, then a seal), the other whole.
    let quotas = Quotas { space_bytes: FITS * 100, user_bytes: u64::MAX };
    let accelerators = Arc::new([b.another(2).await, b.another(1024).await]);
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
    assert_eq!(drafts(&b).await, 0, "every refused draft was withdrawn and taken apart");
}

pub async fn concurrent_joins_use_an_invite_exactly_as_often_as_it_allows(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let invite =
        Invite { space_id: "s".into(), secret_hash: [1; 32], role: Role::Reader, expires_at_ms: u64::MAX, max_uses: 3 };
    db.create_invite("id-ada", &invite, 0, 0).await.unwrap();
    for n in 0..8u8 {
        db.create_user(&user(&format!("j{n}"), n + 10)).await.unwrap();
    }
    let accelerators = Arc::new([b.another(1024).await, b.another(1024).await]);
    let joins = (0..8u8).map(|n| {
        let accelerators = Arc::clone(&accelerators);
        tokio::spawn(async move {
            accelerators[usize::from(n % 2)].join_space("s", &[1; 32], &format!("id-j{n}"), &[4; 32], 0).await
        })
    });
    let results: Vec<_> = futures_util::future::join_all(joins).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert!(results.iter().all(|r| r.is_ok() || *r == Err(StoreError::InviteUsedUp)), "{results:?}");
    assert_eq!(db.members("s", "id-ada", &ALL).await.unwrap().items.len(), 4);
}

pub async fn concurrent_unwinds_of_files_sharing_a_shard_free_it(kind: Kind) {
    // Two files share every shard; both are deleted and taken apart at once on two
    // accelerators: whichever drops a shard's last reference reports it freed.
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&User { user_id: "u".into(), ..user("u", 1) }).await.unwrap();
    db.create_space("s", b"n", "u", &[3; 32], 0, u64::MAX).await.unwrap();
    let shards: Vec<ShardAddress> = (0..20u8).map(|i| ShardAddress::of(&[i])).collect();
    for a in &shards {
        db.record_upload("u", a, 1, 0, u64::MAX).await.unwrap();
    }
    db.commit_file(&new_file("s", "f", "u", shards.clone()), Quotas::NONE, u64::MAX).await.unwrap();
    db.commit_file(&new_file("s", "g", "u", shards.clone()), Quotas::NONE, u64::MAX).await.unwrap();
    db.delete_file("s", "f", "u").await.unwrap();
    db.delete_file("s", "g", "u").await.unwrap();
    let accelerators = Arc::new([b.another(1024).await, b.another(1024).await]);
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

pub async fn every_accelerator_gets_the_secret_stored_first(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let mut accelerators = Vec::new();
    for _ in 0..4 {
        accelerators.push(b.another(1024).await);
    }
    let tries = accelerators
        .into_iter()
        .enumerate()
        .map(|(n, db)| tokio::spawn(async move { db.server_secret([n as u8 + 1; 32]).await.unwrap() }));
    let secrets: Vec<[u8; 32]> = futures_util::future::join_all(tries).await.into_iter().map(Result::unwrap).collect();
    assert!(secrets.iter().all(|s| *s == secrets[0]), "every accelerator got the same secret");
    assert_eq!(b.records.server_secret([9; 32]).await.unwrap(), secrets[0], "and keeps it");
    let b = b.reopen().await;
    assert_eq!(b.records.server_secret([9; 32]).await.unwrap(), secrets[0], "across restarts");
}
