//! The shard keeper's cases: what is stored, pinned, referenced and freed, over
//! each backend's records and shard store.

use std::sync::Arc;

use bytes::Bytes;
use coffer_accelerator::store::keeper::{ShardKeeper, Upload};
use coffer_accelerator::store::{Invite, NewFile, Quota, Quotas, StoreError, User, Withdrawn};
use coffer_core::shard::ShardAddress;

use super::{Backend, Kind, Options, user};

/// A keeper over a fresh backend with users `u` and `v` and a space `s` of `u`'s.
async fn keeper(kind: Kind) -> (Backend, ShardKeeper) {
    let b = Backend::open(kind, Options::default()).await;
    for (id, key) in [("u", 1), ("v", 2)] {
        b.records.create_user(&User { user_id: id.into(), ..user(id, key) }).await.unwrap();
    }
    b.records.create_space("s", b"n", "u", &[3; 32], 0, u64::MAX).await.unwrap();
    let k = ShardKeeper::new(Arc::clone(&b.records), Arc::clone(&b.shards));
    (b, k)
}

/// `user_id` uploads `bytes` at `now_ms`, pinned for 100 ms.
async fn upload(k: &ShardKeeper, user_id: &str, bytes: &[u8], now_ms: u64) -> ShardAddress {
    let address = ShardAddress::of(bytes);
    let upload = Upload { user_id: user_id.into(), address, now_ms, expires_at_ms: now_ms + 100, allowance: u64::MAX };
    k.store(&upload, Bytes::copy_from_slice(bytes)).await.unwrap();
    address
}

fn file(id: &str, by: &str, shards: &[ShardAddress]) -> NewFile {
    NewFile {
        space_id: "s".into(),
        file_id: id.into(),
        sealed_record: vec![1],
        shards: shards.into(),
        max_shard_bytes: u64::MAX,
        created_by: by.into(),
        created_at_ms: 0,
        epoch: 0,
    }
}

pub async fn collection_takes_only_unpinned_unreferenced_shards(kind: Kind) {
    let (_b, k) = keeper(kind).await;
    let a = upload(&k, "u", b"a", 100).await;
    let b = upload(&k, "u", b"b", 100).await;
    let c = upload(&k, "u", b"c", 100).await;
    k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    // Uploading `b` again moves its deadline.
    upload(&k, "u", b"b", 500).await;
    assert_eq!(k.collect(200, 200).await.unwrap(), 1);
    assert!(k.shards.has(&a).await.unwrap(), "referenced");
    assert!(k.shards.has(&b).await.unwrap(), "pinned again");
    assert!(
        !k.shards.has(&c).await.unwrap() && !k.records.shard_recorded(&c).await.unwrap(),
        "collected, bytes and record"
    );
    // Only the uploader's `missing` sees and moves the upload.
    assert_eq!(k.present("v", &[b], 10_000).await.unwrap(), [false]);
    assert_eq!(k.present("u", &[b, c], 1000).await.unwrap(), [true, false]);
    assert_eq!(k.collect(600, 600).await.unwrap(), 0);
    assert_eq!(k.collect(1000, 1000).await.unwrap(), 1);
    // A commit after its shard was collected is refused, never dangling.
    assert_eq!(
        k.records.commit_file(&file("g", "u", &[b]), Quotas::NONE, u64::MAX).await,
        Err(StoreError::MissingShards { missing: 1, listed: 1 })
    );
}

pub async fn a_commit_takes_only_its_writers_uploads_or_its_spaces_shards(kind: Kind) {
    let (_b, k) = keeper(kind).await;
    let invite = Invite {
        space_id: "s".into(),
        secret_hash: [1; 32],
        role: coffer_core::proto::storage::Role::Writer,
        expires_at_ms: u64::MAX,
        max_uses: 1,
    };
    k.records.create_invite("u", &invite, 0, 0).await.unwrap();
    k.records.join_space("s", &[1; 32], "v", &[4; 32], 0).await.unwrap();
    let a = upload(&k, "u", b"a", 0).await;
    let b = upload(&k, "v", b"b", 0).await;
    // `v` cannot pin `u`'s upload by naming it.
    assert_eq!(
        k.records.commit_file(&file("f", "v", &[a, b]), Quotas::NONE, u64::MAX).await,
        Err(StoreError::MissingShards { missing: 1, listed: 2 })
    );
    k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    // Once a file of the space uses it, any writer there may list it too.
    k.records.commit_file(&file("g", "v", &[a, b]), Quotas::NONE, u64::MAX).await.unwrap();
}

pub async fn uploads_are_charged_until_committed_or_expired(kind: Kind) {
    let (_b, k) = keeper(kind).await;
    let base = k.records.used_bytes("u").await.unwrap();
    let a = upload(&k, "u", &[7; 1000], 0).await;
    assert_eq!(k.records.used_bytes("u").await.unwrap(), base + 1000);
    upload(&k, "u", &[7; 1000], 50).await;
    assert_eq!(k.records.used_bytes("u").await.unwrap(), base + 1000, "an upload again is not charged twice");
    let over = Upload {
        user_id: "u".into(),
        address: ShardAddress::of(&[8; 10]),
        now_ms: 0,
        expires_at_ms: 1,
        allowance: base + 1005,
    };
    let err = k.store(&over, Bytes::from_static(&[8; 10])).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { limit: Quota::User, .. }), "{err:?}");
    assert!(!k.shards.has(&over.address).await.unwrap(), "refused before a byte is written");
    let committed = k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    let charged = coffer_accelerator::store::file_cost(1000, 1, 1);
    assert_eq!(committed.stored_bytes, 1000);
    assert_eq!(k.records.used_bytes("u").await.unwrap(), base + charged, "the upload became the file");
    upload(&k, "u", b"z", 0).await;
    k.collect(1000, 0).await.unwrap();
    assert_eq!(k.records.used_bytes("u").await.unwrap(), base + charged, "an expired upload is refunded");
    k.records.delete_file("s", "f", "u").await.unwrap();
    assert_eq!(k.records.used_bytes("u").await.unwrap(), base, "a deleted file is refunded");
}

pub async fn freeing_skips_shards_referenced_meanwhile(kind: Kind) {
    let (_b, k) = keeper(kind).await;
    let a = upload(&k, "u", b"a", 0).await;
    k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    k.records.commit_file(&file("g", "u", &[a]), Quotas::NONE, u64::MAX).await.unwrap();
    let withdrawn = |id: &str| Withdrawn::File { space_id: "s".into(), file_id: id.into() };
    assert!(k.records.delete_file("s", "f", "u").await.unwrap());
    assert_eq!(k.unwind(&withdrawn("f")).await.unwrap(), 0, "still referenced by g");
    // Even handed a stale candidate list, `free` re-checks under the lock.
    assert_eq!(k.free(&[a], u64::MAX).await.unwrap(), 0);
    assert!(k.shards.has(&a).await.unwrap());
    assert!(k.records.delete_file("s", "g", "u").await.unwrap());
    assert_eq!(k.unwind(&withdrawn("g")).await.unwrap(), 1);
    assert!(!k.shards.has(&a).await.unwrap());
}

pub async fn the_collector_takes_apart_commits_that_never_finished(kind: Kind) {
    let (_b, k) = keeper(kind).await;
    let base = k.records.used_bytes("u").await.unwrap();
    let (a, b) = (upload(&k, "u", b"a", 0).await, upload(&k, "u", b"b", 0).await);
    // The first step of a commit, then the accelerator stopped.
    k.records.draft_file(&file("f", "u", &[a, b]), 0..1, 100).await.unwrap();
    assert_eq!(k.collect(50, 0).await.unwrap(), 0, "before its deadline the draft pins its shard");
    assert!(k.shards.has(&a).await.unwrap());
    assert_eq!(k.records.used_bytes("u").await.unwrap(), base + 2, "one upload, one settled into the draft");
    assert_eq!(k.collect(100, 0).await.unwrap(), 1, "at its deadline the draft goes, and its shard");
    assert!(!k.shards.has(&a).await.unwrap() && k.shards.has(&b).await.unwrap());
    assert_eq!(k.records.used_bytes("u").await.unwrap(), base, "the draft and the expired upload are refunded");
    // Nothing of it is left: its id is free again.
    k.records.draft_file(&file("f", "u", &[]), 0..0, 200).await.unwrap();
}

pub async fn the_sweep_removes_only_unrecorded_bytes(kind: Kind) {
    let (_b, k) = keeper(kind).await;
    let (kept, stray) = (upload(&k, "u", b"kept", 0).await, ShardAddress::of(b"stray"));
    k.shards.put(&stray, Bytes::from_static(b"stray")).await.unwrap();
    let mut swept = 0;
    for byte in 0..=255u8 {
        swept += k.sweep_unrecorded(&format!("{byte:02x}")).await.unwrap();
    }
    assert_eq!(swept, 1);
    assert!(k.shards.has(&kept).await.unwrap() && !k.shards.has(&stray).await.unwrap());
}
