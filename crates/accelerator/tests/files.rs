//! Files over real HTTP: commits that need every shard, roles, the quota, deletes
//! that free shards at once, and the collector with a short grace.

mod common;

use std::time::Duration;

use coffer_core::ErrorCode::*;
use coffer_core::proto::storage::*;
use coffer_core::shard::ShardAddress;
use common::*;

/// A short grace and a busy collector, so tests see collections within seconds.
fn short_grace(config: &mut coffer_accelerator::Config) {
    config.shard_grace = Duration::from_secs(2);
    config.gc_interval = Duration::from_millis(100);
}

#[tokio::test]
async fn a_commit_needs_every_shard_and_meters_distinct_bytes() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let shards = shards_of(&[1u8; 5000]);
    ada.upload(&api, &shards[..5]).await;

    let err = ada.commit(&api, &space, &addresses(&shards)).await.unwrap_err();
    assert_eq!(err.code, InvalidInput);
    assert!(
        err.message.contains("upload every shard before committing") && err.message.contains("1 of"),
        "{}",
        err.message
    );
    assert!(ada.files(&api, &space).await.unwrap().is_empty(), "nothing visible");
    assert_eq!(ada.used(&api, &space).await.unwrap(), 0);

    ada.upload(&api, &shards[5..]).await;
    // Listed twice, counted once.
    let mut listed = addresses(&shards);
    listed.push(shards[0].0);
    let file = ada.commit(&api, &space, &listed).await.unwrap();
    assert_eq!(file.stored_bytes, total_len(&shards));
    assert_eq!((file.space_id.as_str(), file.created_by.as_str()), (space.id.as_str(), ada.user_id()));
    assert_eq!(ada.used(&api, &space).await.unwrap(), total_len(&shards));
    let got: FileEntry = ada.get_json(&api, &space.path(&format!("/files/{}", file.file_id))).await.unwrap();
    assert_eq!(got, file);
    assert_eq!(ada.files(&api, &space).await.unwrap(), std::slice::from_ref(&file));

    // The same file id again is a conflict.
    let again =
        CommitFileRequest { file_id: file.file_id.clone(), sealed_record: sealed(99), ..commit_request(&listed) };
    let err = api.call::<FileEntry>(&space.path("/files"), Some(ada.token()), &again).await.unwrap_err();
    assert_eq!(err.code, Conflict);
    let missing = ada.get_json::<FileEntry>(&api, &space.path(&format!("/files/{}", new_id()))).await;
    assert_eq!(missing.unwrap_err().code, NotFound);
}

#[tokio::test]
async fn readers_read_writers_write() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let rita = sign_up(&api, "rita", "pw").await;
    let will = sign_up(&api, "will", "pw").await;
    let space = ada.create_space(&api).await;
    let as_reader = ada.invite(&api, &space, Role::Reader, None, None).await.unwrap();
    let as_writer = ada.invite(&api, &space, Role::Writer, None, None).await.unwrap();
    rita.join(&api, &as_reader.encode().unwrap()).await.unwrap();
    will.join(&api, &as_writer.encode().unwrap()).await.unwrap();
    let shards = shards_of(b"chunk");
    rita.upload(&api, &shards).await;

    assert_eq!(rita.commit(&api, &space, &addresses(&shards)).await.unwrap_err().code, Forbidden);
    // A writer cannot commit shards another user uploaded: they upload them too.
    assert_eq!(will.commit(&api, &space, &addresses(&shards)).await.unwrap_err().code, InvalidInput);
    assert_eq!(will.missing(&api, &addresses(&shards)).await, addresses(&shards), "rita's uploads are hers");
    will.upload(&api, &shards).await;
    let file = will.commit(&api, &space, &addresses(&shards)).await.unwrap();
    assert_eq!(rita.files(&api, &space).await.unwrap(), std::slice::from_ref(&file), "readers list");
    assert_eq!(rita.used(&api, &space).await.unwrap(), file.stored_bytes);
    assert_eq!(rita.delete_file(&api, &space, &file.file_id).await.unwrap_err().code, Forbidden);
    assert!(api.has_shard(&shards[0].0).await);
    assert!(will.delete_file(&api, &space, &file.file_id).await.unwrap());
    assert!(!will.delete_file(&api, &space, &file.file_id).await.unwrap(), "existed only once");
}

#[tokio::test]
async fn deleting_a_file_frees_its_shards_at_once_but_not_shared_ones() {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let shards = shards_of(&[9u8; 2000]);
    ada.upload(&api, &shards).await;
    let (only_a, shared, only_b) = (&shards[..2], &shards[2..4], &shards[4..]);
    let a = ada.commit(&api, &space, &addresses(&[only_a, shared].concat())).await.unwrap();
    let b = ada.commit(&api, &space, &addresses(&[shared, only_b].concat())).await.unwrap();

    assert!(ada.delete_file(&api, &space, &a.file_id).await.unwrap());
    for (address, _) in only_a {
        assert!(!api.has_shard(address).await, "freed before the delete answered");
    }
    for (address, bytes) in [shared, only_b].concat() {
        assert_eq!(api.get_shard(&address).await.unwrap(), bytes, "still referenced by the other file");
    }
    assert_eq!(api.fetch_shards(&addresses(only_a)).await, [None, None]);
    assert_eq!(ada.missing(&api, &addresses(only_a)).await, addresses(only_a));
    assert_eq!(ada.used(&api, &space).await.unwrap(), b.stored_bytes);

    assert!(ada.delete_file(&api, &space, &b.file_id).await.unwrap());
    for (address, _) in &shards {
        assert!(!api.has_shard(address).await);
    }
    assert_eq!(ada.used(&api, &space).await.unwrap(), 0);
    let fan_outs = std::fs::read_dir(server.dir.path().join("shards")).unwrap();
    for folder in fan_outs {
        assert_eq!(std::fs::read_dir(folder.unwrap().path()).unwrap().count(), 0, "no shard left on disk");
    }
}

#[tokio::test]
async fn over_quota_nothing_is_visible_and_the_shards_are_collected() {
    let server = TestServer::start(|c| {
        short_grace(c);
        c.space_quota_bytes = 10_000;
    })
    .await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let first = shards_of(&[1u8; 4000]);
    let second = shards_of(&[2u8; 4000]);
    assert!(total_len(&first) <= 10_000 && total_len(&first) + total_len(&second) > 10_000);
    ada.upload(&api, &first).await;
    let kept = ada.commit(&api, &space, &addresses(&first)).await.unwrap();
    ada.upload(&api, &second).await;

    let err = ada.commit(&api, &space, &addresses(&second)).await.unwrap_err();
    assert_eq!(err.code, QuotaExceeded);
    assert!(err.message.contains("10000"), "{}", err.message);
    assert_eq!(ada.files(&api, &space).await.unwrap(), [kept]);
    assert_eq!(ada.used(&api, &space).await.unwrap(), total_len(&first));
    let usage: UsageResponse = ada.get_json(&api, &space.path("/usage")).await.unwrap();
    assert_eq!(usage.quota_bytes, 10_000);

    let refused = addresses(&second);
    eventually("the refused file's shards are collected", || {
        let api = api.clone();
        let refused = refused.clone();
        async move { api.fetch_shards(&refused).await.iter().all(Option::is_none) }
    })
    .await;
    for (address, bytes) in &first {
        assert_eq!(&api.get_shard(address).await.unwrap(), bytes, "committed shards are kept");
    }
}

#[tokio::test]
async fn an_upload_never_committed_is_collected_after_the_grace() {
    let server = TestServer::start(short_grace).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let committed = shards_of(b"kept");
    ada.upload(&api, &committed).await;
    ada.commit(&api, &space, &addresses(&committed)).await.unwrap();
    // Uploaded later than the committed ones: by the time these go, those were
    // old enough to go too, had they not been referenced.
    let abandoned = shards_of(b"aborted upload");
    ada.upload(&api, &abandoned).await;
    assert!(ada.missing(&api, &addresses(&abandoned)).await.is_empty(), "stored for now");

    let gone = addresses(&abandoned);
    eventually("the abandoned upload is collected", || {
        let api = api.clone();
        let gone = gone.clone();
        async move { api.fetch_shards(&gone).await.iter().all(Option::is_none) }
    })
    .await;
    for (address, bytes) in &committed {
        assert_eq!(&api.get_shard(address).await.unwrap(), bytes);
    }
    assert_eq!(ada.missing(&api, &addresses(&abandoned)).await, addresses(&abandoned));
    // A commit now is refused rather than pointing at collected shards.
    assert_eq!(ada.commit(&api, &space, &addresses(&abandoned)).await.unwrap_err().code, InvalidInput);
}

#[tokio::test]
async fn shards_without_a_record_are_swept_at_start() {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let shards = shards_of(b"recorded");
    ada.upload(&api, &shards).await;
    let dir = server.stop().await;

    // What a crash between writing a shard and recording it would leave, and a
    // half-written temporary.
    let stray = b"written, never recorded".to_vec();
    let stray_address = ShardAddress::of(&stray);
    let folder = dir.path().join("shards").join(stray_address.fan_out());
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(stray_address.to_hex()), &stray).unwrap();
    std::fs::write(dir.path().join("shards/tmp/half-written"), b"half").unwrap();

    let server = TestServer::start_in(dir, |_| {}).await;
    let api = server.api();
    eventually("the unrecorded shard is swept", || {
        let api = api.clone();
        async move { !api.has_shard(&stray_address).await }
    })
    .await;
    assert!(std::fs::read_dir(server.dir.path().join("shards/tmp")).unwrap().next().is_none());
    for (address, bytes) in &shards {
        assert_eq!(&api.get_shard(address).await.unwrap(), bytes, "recorded shards stay");
    }
}
