//! The shard routes over real HTTP: upload checked against the address, open reads,
//! "which are missing" and batch reads.

mod common;

use coffer_core::ErrorCode::*;
use coffer_core::proto::storage::*;
use coffer_core::shard::ShardAddress;
use common::*;
use serde_json::json;

#[tokio::test]
async fn upload_then_read_without_a_session() {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let shards = shards_of(b"a chunk of some file");
    ada.upload(&api, &shards).await;
    for (address, bytes) in &shards {
        assert_eq!(&api.get_shard(address).await.unwrap(), bytes, "GET is open and returns the bytes");
        let on_disk = server.dir.path().join("shards").join(address.fan_out()).join(address.to_hex());
        assert_eq!(&std::fs::read(on_disk).unwrap(), bytes, "stored under its fan-out folder");
    }
    // Uploading again is harmless.
    ada.upload(&api, &shards[..1]).await;
    assert_eq!(api.get_shard(&shards[0].0).await.unwrap(), shards[0].1);
    assert!(std::fs::read_dir(server.dir.path().join("shards/tmp")).unwrap().next().is_none(), "no temporaries left");
}

#[tokio::test]
async fn a_body_that_does_not_hash_to_its_address_is_not_stored() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let (address, mut bytes) = shards_of(b"chunk").remove(0);
    bytes[0] ^= 1;
    let msg = Api::expect_error(api.put_shard(&address.to_hex(), Some(ada.token()), bytes).await, Integrity);
    assert!(msg.contains("nothing was stored"), "{msg}");
    assert!(!api.has_shard(&address).await);
    assert_eq!(ada.missing(&api, &[address]).await, [address]);
    // The empty body is a shard too, and must hash to its address like any other.
    Api::expect_error(api.put_shard(&address.to_hex(), Some(ada.token()), Vec::new()).await, Integrity);
    let empty = ShardAddress::of(b"");
    assert_eq!(api.put_shard(&empty.to_hex(), Some(ada.token()), Vec::new()).await.0, 204);
    assert_eq!(api.get_shard(&empty).await.unwrap(), b"");
}

#[tokio::test]
async fn uploads_need_a_session_and_a_canonical_address() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let (address, bytes) = shards_of(b"chunk").remove(0);
    Api::expect_error(api.put_shard(&address.to_hex(), None, bytes.clone()).await, Unauthorized);
    Api::expect_error(api.put_shard(&address.to_hex(), Some("forged"), bytes.clone()).await, Unauthorized);
    assert!(!api.has_shard(&address).await);
    let t = Some(ada.token());
    for bad in [address.to_hex().to_uppercase(), address.to_hex()[1..].to_owned(), "zz".repeat(32), "x".into()] {
        Api::expect_error(api.put_shard(&bad, t, bytes.clone()).await, InvalidInput);
        Api::expect_error(api.get(&format!("/v1/shards/{bad}"), None).await, InvalidInput);
    }
    assert!(api.healthy().await);
}

#[tokio::test]
async fn a_shard_over_the_limit_is_too_large() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let big = vec![7u8; MAX_SHARD_BYTES + 1];
    let address = ShardAddress::of(&big);
    Api::expect_error(api.put_shard(&address.to_hex(), Some(ada.token()), big).await, TooLarge);
    assert!(!api.has_shard(&address).await);
    // The limit itself is accepted: the JSON routes' 1 MiB does not apply here.
    let max = vec![7u8; MAX_SHARD_BYTES];
    let address = ShardAddress::of(&max);
    assert_eq!(api.put_shard(&address.to_hex(), Some(ada.token()), max.clone()).await.0, 204);
    assert_eq!(api.get_shard(&address).await.unwrap().len(), MAX_SHARD_BYTES);
    assert!(api.healthy().await);
}

#[tokio::test]
async fn missing_and_fetch_answer_in_request_order() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let shards = shards_of(&[5u8; 3000]);
    let (stored, absent) = shards.split_at(4);
    ada.upload(&api, stored).await;

    // Interleaved, with a repeat: the answer follows the request.
    let asked = vec![absent[0].0, stored[2].0, absent[1].0, stored[0].0, absent[0].0];
    assert_eq!(ada.missing(&api, &asked).await, [absent[0].0, absent[1].0, absent[0].0]);
    assert!(ada.missing(&api, &[]).await.is_empty());

    let fetched = api.fetch_shards(&asked).await;
    assert_eq!(fetched[0], None);
    assert_eq!(fetched[1].as_deref(), Some(&stored[2].1[..]));
    assert_eq!(fetched[2], None);
    assert_eq!(fetched[3].as_deref(), Some(&stored[0].1[..]));
    assert_eq!(fetched[4], None);
    assert!(api.fetch_shards(&[]).await.is_empty());

    // `missing` needs a session; `fetch` does not (it was called without one above).
    let req = ShardsRequest { addresses: asked.clone() };
    Api::expect_error(api.post("/v1/shards/missing", None, &req).await, Unauthorized);
}

#[tokio::test]
async fn missing_tells_the_grace_its_answer_holds_uploads_for() {
    let server = TestServer::start(|config| config.shard_grace = std::time::Duration::from_secs(1234)).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let req = ShardsRequest { addresses: vec![] };
    let answer: ShardsMissingResponse = api.call("/v1/shards/missing", Some(ada.token()), &req).await.unwrap();
    assert_eq!(answer, ShardsMissingResponse { missing: vec![], grace_ms: 1_234_000 });
}

#[tokio::test]
async fn a_shard_removed_from_disk_is_missing_and_heals_on_upload() {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let shards = shards_of(b"chunk");
    ada.upload(&api, &shards).await;
    let (address, bytes) = &shards[0];
    std::fs::remove_file(server.dir.path().join("shards").join(address.fan_out()).join(address.to_hex())).unwrap();
    assert_eq!(ada.missing(&api, &addresses(&shards)).await, [*address]);
    ada.upload(&api, &shards[..1]).await;
    assert_eq!(&api.get_shard(address).await.unwrap(), bytes);
    assert!(ada.missing(&api, &addresses(&shards)).await.is_empty());
}

#[tokio::test]
async fn batches_are_bounded_and_checked() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let t = Some(ada.token());
    let too_many = ShardsRequest { addresses: vec![ShardAddress::of(b"x"); MAX_BATCH_ADDRESSES + 1] };
    Api::expect_error(api.post("/v1/shards/missing", t, &too_many).await, TooLarge);
    Api::expect_error(api.post("/v1/shards/fetch", None, &too_many).await, TooLarge);
    let just_enough = ShardsRequest { addresses: vec![ShardAddress::of(b"x"); MAX_BATCH_ADDRESSES] };
    assert_eq!(api.post("/v1/shards/missing", t, &just_enough).await.0, 200);

    let good = ShardAddress::of(b"x").to_hex();
    for body in [
        json!({}),
        json!({"addresses": "nope"}),
        json!({"addresses": [good.to_uppercase()]}),
        json!({"addresses": [good, 42]}),
        json!({"addresses": [&good[2..]]}),
        json!([good]),
    ] {
        Api::expect_error(api.post("/v1/shards/missing", t, &body).await, InvalidInput);
        Api::expect_error(api.post("/v1/shards/fetch", None, &body).await, InvalidInput);
    }
    assert!(api.healthy().await);
}
