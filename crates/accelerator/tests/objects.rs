//! The object-store shard store ([`ObjectShards`]) behaves the same in a directory
//! and in an S3 bucket, and its bucket honours create-only puts.
//!
//! The bucket is moto's S3 server, started by each test on a free port from
//! `target/moto-venv` (`scripts/setup` installs it); without it these tests fail.

#[path = "common/moto.rs"]
mod moto;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use coffer_accelerator::store::objects::ObjectShards;
use coffer_accelerator::store::shards::ShardStore as _;
use coffer_core::shard::ShardAddress;
use futures_util::TryStreamExt as _;
use moto::Moto;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};

/// What every store must do. `exact_delete`: whether `delete` can tell a missing
/// shard (a directory can; S3's DELETE answers 204 either way).
async fn behaviour(store: &ObjectShards, exact_delete: bool) {
    let small = Bytes::from_static(b"sealed shard bytes");
    let a = ShardAddress::of(&small);
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.size(&a).await.unwrap(), None);
    assert!(store.open(&a).await.unwrap().is_none());
    assert!(store.list("").await.unwrap().is_empty());

    store.put(&a, small.clone()).await.unwrap();
    store.put(&a, small.clone()).await.unwrap(); // a second put of a stored shard is success
    assert_eq!(store.get(&a).await.unwrap(), Some(small.clone()));
    assert_eq!(store.size(&a).await.unwrap(), Some(small.len() as u64));

    // A 1 MiB shard is streamed in pieces, not read whole.
    let big = Bytes::from((0..1 << 20).map(|i: u32| (i % 251) as u8).collect::<Vec<_>>());
    let b = ShardAddress::of(&big);
    store.put(&b, big.clone()).await.unwrap();
    let reader = store.open(&b).await.unwrap().unwrap();
    assert_eq!(reader.len, big.len() as u64);
    let pieces: Vec<Bytes> = reader.bytes.try_collect().await.unwrap();
    assert!(pieces.len() > 1, "one piece of {} bytes: read whole", pieces[0].len());
    assert_eq!(pieces.concat(), big);

    let mut both = vec![a, b];
    both.sort();
    assert_eq!(store.list("").await.unwrap(), both);
    assert_eq!(store.list(&a.fan_out()).await.unwrap(), [a]);
    assert_eq!(
        store.list(&a.to_hex()[..1]).await.unwrap(),
        both.iter().copied().filter(|x| x.to_hex()[..1] == a.to_hex()[..1]).collect::<Vec<_>>()
    );
    assert_eq!(store.list(&a.to_hex()[..5]).await.unwrap(), [a]);
    assert!(store.list("zz").await.unwrap().is_empty());

    assert!(store.delete(&a).await.unwrap());
    assert_eq!(store.delete(&a).await.unwrap(), !exact_delete);
    assert_eq!(store.get(&a).await.unwrap(), None);
    assert_eq!(store.size(&a).await.unwrap(), None);
    assert_eq!(store.list("").await.unwrap(), [b]);
    // Deleted, then stored again.
    store.put(&a, small.clone()).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap(), Some(small));
}

/// 16 different byte strings put under one address at once through `ObjectShards`:
/// every put answers success, and what is stored is one of them, whole.
async fn racing_puts_leave_one_whole_shard(store: Arc<ObjectShards>) {
    let address = ShardAddress::of(b"contested");
    let candidates: Vec<Bytes> = (0..16u8).map(|i| Bytes::from(vec![i; 256 * 1024])).collect();
    let puts = candidates.iter().cloned().map(|bytes| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.put(&address, bytes).await })
    });
    for put in futures_util::future::join_all(puts).await {
        put.unwrap().unwrap();
    }
    let stored = store.get(&address).await.unwrap().unwrap();
    assert!(candidates.contains(&stored), "the stored shard is none of the candidates: mixed bytes");
}

#[tokio::test]
async fn directory_behaviour() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectShards::open_dir(&dir.path().join("shards")).unwrap();
    behaviour(&store, true).await;
}

#[tokio::test]
async fn s3_behaviour() {
    let moto = Moto::start();
    let store = moto.shards("coffer-behaviour", "deployment/one").await;
    behaviour(&store, false).await;
    // The keys are the directory layout under the URL's prefix.
    let keys: Vec<String> =
        moto.raw("coffer-behaviour").list(None).map_ok(|meta| meta.location.to_string()).try_collect().await.unwrap();
    let a = ShardAddress::of(b"sealed shard bytes");
    assert!(keys.contains(&format!("deployment/one/{}/{}", a.fan_out(), a.to_hex())), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directory_racing_puts() {
    let dir = tempfile::tempdir().unwrap();
    racing_puts_leave_one_whole_shard(Arc::new(ObjectShards::open_dir(dir.path()).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_racing_puts() {
    let moto = Moto::start();
    racing_puts_leave_one_whole_shard(Arc::new(moto.shards("coffer-race", "").await)).await;
}

/// The server itself must refuse all but the first create-only put — without that,
/// "create-only" in `ObjectShards` would be a name only. This catches a store that
/// ignores `If-None-Match: *` (npm's s3rver does).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_honours_create_only_puts() {
    let moto = Moto::start();
    moto.bucket("coffer-create").await;
    let raw = moto.raw("coffer-create");

    // One after the other: the second is refused and changes nothing.
    let key = Path::from("ab/first");
    raw.put_opts(&key, PutPayload::from_static(b"first"), PutMode::Create.into()).await.unwrap();
    let second = raw.put_opts(&key, PutPayload::from_static(b"second"), PutMode::Create.into()).await;
    assert!(matches!(second, Err(object_store::Error::AlreadyExists { .. })), "{second:?}");
    assert_eq!(&raw.get(&key).await.unwrap().bytes().await.unwrap()[..], b"first");

    // 16 at once, each different: exactly one wins, and it is what is stored.
    let key = Path::from("ab/raced");
    let puts = (0..16u8).map(|i| {
        let (raw, key) = (Arc::clone(&raw), key.clone());
        tokio::spawn(async move {
            let result = raw.put_opts(&key, PutPayload::from(vec![i; 64 * 1024]), PutMode::Create.into()).await;
            (i, result)
        })
    });
    let mut winners = Vec::new();
    for put in futures_util::future::join_all(puts).await {
        match put.unwrap() {
            (i, Ok(_)) => winners.push(i),
            (_, Err(object_store::Error::AlreadyExists { .. })) => {}
            (i, Err(e)) => panic!("put {i}: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(raw.get(&key).await.unwrap().bytes().await.unwrap(), vec![winners[0]; 64 * 1024]);
}

/// Rough put/get throughput of 1 MiB shards, directory against moto:
/// `cargo test -p coffer-accelerator --test objects -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn throughput() {
    const N: usize = 64;
    let shards: Vec<Bytes> = (0..N as u32)
        .map(|n| Bytes::from((0..1u32 << 20).map(|i| (i.wrapping_mul(n + 7) >> 3) as u8).collect::<Vec<_>>()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start();
    let stores =
        [("directory", ObjectShards::open_dir(dir.path()).unwrap()), ("moto", moto.shards("coffer-speed", "").await)];
    for (name, store) in &stores {
        let started = Instant::now();
        for bytes in &shards {
            store.put(&ShardAddress::of(bytes), bytes.clone()).await.unwrap();
        }
        let put = N as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for bytes in &shards {
            assert_eq!(store.get(&ShardAddress::of(bytes)).await.unwrap().unwrap().len(), bytes.len());
        }
        let get = N as f64 / started.elapsed().as_secs_f64();
        println!("{name}: put {put:.0} MiB/s, get {get:.0} MiB/s (1 MiB shards, one at a time)");
    }
}
