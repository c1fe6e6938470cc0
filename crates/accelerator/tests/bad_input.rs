//! Bad input gets a clear JSON error with its code, and the accelerator keeps serving.

mod common;

use coffer_core::ErrorCode::{self, *};
use coffer_core::b64;
use coffer_core::kv::SEALED_VERSION;
use coffer_core::proto::PageQuery;
use coffer_core::proto::storage::SpaceListResponse;
use coffer_core::proto::*;
use coffer_core::validate::{MAX_STORED_NAME_BYTES, MAX_VALUE_BYTES};
use common::*;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_are_invalid_input() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let t = Some(ada.token());

    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("/v1/auth/salt", json!({})),
        ("/v1/auth/salt", json!({"username": 42})),
        ("/v1/auth/salt", json!({"username": ""})),
        ("/v1/auth/salt", json!({"username": "has space"})),
        ("/v1/auth/challenge", json!({"username": null})),
        ("/v1/auth/login", json!({"challengeId": "x"})),
        ("/v1/auth/login", json!({"challengeId": "x", "signature": "short"})),
        ("/v1/auth/login", json!({"challengeId": "", "signature": b64::encode([0u8; 64])})),
        ("/v1/auth/signup", json!({"username": "eve"})),
        ("/v1/auth/recovery", json!({})),
        ("/v1/auth/recovery", json!({"recoveryPublicKey": "x", "wrappedRoot": "y"})),
        (
            "/v1/auth/recovery",
            json!({"origin": "o", "challengeId": "", "rootProof": b64::encode([0u8; 32]), "recoveryPublicKey": "x", "wrappedRoot": "y"}),
        ),
        (
            "/v1/auth/recovery",
            json!({"origin": "o", "challengeId": "c", "rootProof": "short", "recoveryPublicKey": "x", "wrappedRoot": "y"}),
        ),
        (
            "/v1/auth/recovery",
            json!({"origin": "o", "challengeId": "c", "rootProof": b64::encode([0u8; 64]), "recoveryPublicKey": "x", "wrappedRoot": "y"}),
        ),
        (
            "/v1/auth/recovery",
            json!({"origin": 7, "challengeId": "c", "rootProof": "p", "recoveryPublicKey": "x", "wrappedRoot": "y"}),
        ),
        ("/v1/auth/recover/challenge", json!({"username": "has space"})),
        ("/v1/auth/recover", json!({"challengeId": "x", "signature": b64::encode([0u8; 64])})),
        ("/v1/kv/set", json!({"collection": "c", "id": "i"})),
        ("/v1/kv/set", json!({"collection": "c", "id": 5, "value": {"kind": "sealed", "envelope": ""}})),
        ("/v1/kv/set", json!({"collection": "c", "id": "i", "value": {"kind": "other"}})),
        ("/v1/kv/set", json!({"collection": "c", "id": "i", "value": "just a string"})),
        ("/v1/kv/get", json!({"collection": "c"})),
        ("/v1/kv/get", json!({"collection": ["c"], "id": "i"})),
        ("/v1/kv/list", json!([])),
        ("/v1/kv/delete", json!("c/i")),
    ];
    for (path, body) in cases {
        let msg = Api::expect_error(api.post(path, t, &body).await, InvalidInput);
        assert!(!msg.contains("{ "), "no Debug dumps: {msg}");
    }

    // Not JSON at all, and JSON without its content type.
    Api::expect_error(api.post_raw("/v1/kv/list", t, "application/json", b"{nope".to_vec()).await, InvalidInput);
    Api::expect_error(api.post_raw("/v1/kv/list", t, "application/json", Vec::new()).await, InvalidInput);
    let body = br#"{"collection":"c"}"#.to_vec();
    Api::expect_error(api.post_raw("/v1/kv/list", t, "text/plain", body).await, InvalidInput);
    assert!(api.healthy().await);
}

#[tokio::test]
async fn bad_names_are_invalid_input() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let t = Some(ada.token());
    let long = "x".repeat(MAX_STORED_NAME_BYTES + 1);
    for (collection, id) in
        [("c", ""), ("", "i"), ("c", long.as_str()), (long.as_str(), "i"), ("c", "a\nb"), ("c\0", "i")]
    {
        let key = KvKeyRequest { collection: collection.into(), id: id.into() };
        Api::expect_error(api.post("/v1/kv/get", t, &key).await, InvalidInput);
        Api::expect_error(api.post("/v1/kv/delete", t, &key).await, InvalidInput);
        let set = json!({"collection": collection, "id": id, "value": {"kind": "plain", "json": "1", "mac": b64::encode([0u8; 32])}});
        Api::expect_error(api.post("/v1/kv/set", t, &set).await, InvalidInput);
    }
    Api::expect_error(
        api.post("/v1/kv/list", t, &KvListRequest { collection: String::new(), page: PageQuery::default() }).await,
        InvalidInput,
    );
    assert!(api.healthy().await);
}

fn set(envelope: KvValue) -> KvSetRequest {
    KvSetRequest { collection: "c".into(), id: "i".into(), value: envelope }
}

fn sealed(bytes: Vec<u8>) -> KvValue {
    KvValue::Sealed { envelope: b64::encode(bytes) }
}

fn envelope(version: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    bytes[0] = version;
    bytes
}

#[tokio::test]
async fn bad_envelopes_are_refused_and_nothing_is_written() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let t = Some(ada.token());
    let min = 1 + 12 + 16;
    let max = 1 + 12 + MAX_VALUE_BYTES + 16;

    let cases: Vec<(KvValue, ErrorCode)> = vec![
        (KvValue::Sealed { envelope: String::new() }, InvalidInput),
        (KvValue::Sealed { envelope: "not base64url!".into() }, InvalidInput),
        (KvValue::Sealed { envelope: "AAAA====".into() }, InvalidInput),
        (sealed(envelope(2, min)), InvalidInput),
        (sealed(envelope(0, min)), InvalidInput),
        (sealed(envelope(SEALED_VERSION, min - 1)), InvalidInput),
        (sealed(envelope(SEALED_VERSION, max + 1)), TooLarge),
        (KvValue::Plain { json: "{not json".into(), mac: b64::encode([0u8; 32]) }, InvalidInput),
        (KvValue::Plain { json: "1".into(), mac: b64::encode([0u8; 31]) }, InvalidInput),
        (KvValue::Plain { json: "1".into(), mac: "??".into() }, InvalidInput),
        (
            KvValue::Plain { json: format!("\"{}\"", "x".repeat(MAX_VALUE_BYTES)), mac: b64::encode([0u8; 32]) },
            TooLarge,
        ),
    ];
    for (value, code) in cases {
        Api::expect_error(api.post("/v1/kv/set", t, &set(value)).await, code);
    }
    // The limits themselves are accepted.
    let ok: KvWriteResponse = api.call("/v1/kv/set", t, &set(sealed(envelope(SEALED_VERSION, min)))).await.unwrap();
    assert_eq!(ok.seq, 1, "no refused write reached the log");
    api.call::<KvWriteResponse>("/v1/kv/set", t, &set(sealed(envelope(SEALED_VERSION, max)))).await.unwrap();
    assert!(api.healthy().await);
}

#[tokio::test]
async fn oversize_bodies_are_too_large() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let big = set(KvValue::Sealed { envelope: "A".repeat(2 * 1024 * 1024) });
    Api::expect_error(api.post("/v1/kv/set", Some(ada.token()), &big).await, TooLarge);
    let big_name = SaltRequest { username: "a".repeat(1024 * 1024 + 1) };
    Api::expect_error(api.post("/v1/auth/salt", None, &big_name).await, TooLarge);
    // Without a Content-Length: a chunked body cannot be budgeted (crate::budget), so
    // it is refused before it is read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..40).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let response = api
        .http
        .post(format!("{}/v1/kv/list", api.url))
        .bearer_auth(ada.token())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err: ErrorBody = response.json().await.unwrap();
    assert_eq!(err.code, InvalidInput);
    assert!(err.message.contains("Content-Length"), "{}", err.message);
    assert!(api.healthy().await);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    Api::expect_error(api.get("/v1/nope", None).await, NotFound);
    Api::expect_error(api.get("/v1/kv/set", None).await, NotFound);
    Api::expect_error(api.get("/elsewhere", None).await, NotFound);
    // The feed route without a websocket upgrade.
    Api::expect_error(api.get("/v1/kv/feed", None).await, InvalidInput);
    assert!(api.healthy().await);
}

#[tokio::test]
async fn bad_space_and_file_input_is_refused_and_the_server_keeps_serving() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let t = Some(ada.token());
    let space = ada.create_space(&api).await;
    let shards = shards_of(b"chunk");
    ada.upload(&api, &shards).await;
    let address = shards[0].0.to_hex();

    let short_id = b64::encode([0u8; 15]);
    let long_id = b64::encode([0u8; 17]);
    let mac = b64::encode([0u8; 32]);
    let cases: Vec<(String, serde_json::Value, ErrorCode)> = vec![
        (
            "/v1/spaces".into(),
            json!({"spaceId": short_id, "sealedName": sealed_text(10), "rosterMac": mac}),
            InvalidInput,
        ),
        (
            "/v1/spaces".into(),
            json!({"spaceId": long_id, "sealedName": sealed_text(10), "rosterMac": mac}),
            InvalidInput,
        ),
        (
            "/v1/spaces".into(),
            json!({"spaceId": "has spaces in it......", "sealedName": sealed_text(10), "rosterMac": mac}),
            InvalidInput,
        ),
        (
            "/v1/spaces".into(),
            json!({"spaceId": new_id(), "sealedName": "not base64!", "rosterMac": mac}),
            InvalidInput,
        ),
        ("/v1/spaces".into(), json!({"spaceId": new_id(), "sealedName": "", "rosterMac": mac}), InvalidInput),
        (
            "/v1/spaces".into(),
            json!({"spaceId": new_id(), "sealedName": sealed_text(1025), "rosterMac": mac}),
            TooLarge,
        ),
        ("/v1/spaces".into(), json!({"spaceId": 7, "sealedName": sealed_text(10), "rosterMac": mac}), InvalidInput),
        ("/v1/spaces".into(), json!({"spaceId": new_id(), "rosterMac": mac}), InvalidInput),
        ("/v1/spaces/join".into(), json!({"spaceId": space.id, "secret": "short", "rosterMac": mac}), InvalidInput),
        (
            "/v1/spaces/join".into(),
            json!({"spaceId": "", "secret": b64::encode([0u8; 32]), "rosterMac": mac}),
            InvalidInput,
        ),
        ("/v1/spaces/join".into(), json!({"spaceId": space.id, "secret": [1, 2], "rosterMac": mac}), InvalidInput),
        // The roster entry: 32 bytes of base64url, and not to be left out.
        ("/v1/spaces".into(), json!({"spaceId": new_id(), "sealedName": sealed_text(10)}), InvalidInput),
        (
            "/v1/spaces".into(),
            json!({"spaceId": new_id(), "sealedName": sealed_text(10), "rosterMac": b64::encode([0u8; 31])}),
            InvalidInput,
        ),
        (
            "/v1/spaces/join".into(),
            json!({"spaceId": space.id, "secret": b64::encode([0u8; 32]), "rosterMac": "not base64!"}),
            InvalidInput,
        ),
        ("/v1/spaces/join".into(), json!({"spaceId": space.id, "secret": b64::encode([0u8; 32])}), InvalidInput),
        (
            space.path("/files"),
            json!({"fileId": short_id, "sealedRecord": sealed_text(50), "size": 1000, "chunkSize": 1024, "dataShards": 4, "parityShards": 2, "shards": [address]}),
            InvalidInput,
        ),
        (
            space.path("/files"),
            json!({"fileId": new_id(), "sealedRecord": "***", "size": 1000, "chunkSize": 1024, "dataShards": 4, "parityShards": 2, "shards": [address]}),
            InvalidInput,
        ),
        (
            space.path("/files"),
            json!({"fileId": new_id(), "sealedRecord": sealed_text(4097), "size": 1000, "chunkSize": 1024, "dataShards": 4, "parityShards": 2, "shards": [address]}),
            TooLarge,
        ),
        (
            space.path("/files"),
            json!({"fileId": new_id(), "sealedRecord": sealed_text(50), "size": 1000, "chunkSize": 1024, "dataShards": 4, "parityShards": 2, "shards": ["abc"]}),
            InvalidInput,
        ),
        (
            space.path("/files"),
            json!({"fileId": new_id(), "sealedRecord": sealed_text(50), "size": 1000, "chunkSize": 1024, "dataShards": 4, "parityShards": 2, "shards": address}),
            InvalidInput,
        ),
        (space.path("/files"), json!({"fileId": new_id(), "sealedRecord": sealed_text(50)}), InvalidInput),
        (space.path("/members/remove"), json!({"userId": 5}), InvalidInput),
        (
            space.path("/invites"),
            json!({"secretHash": b64::encode([0u8; 32]), "role": "reader", "maxUses": "1"}),
            InvalidInput,
        ),
    ];
    for (path, body, code) in cases {
        let msg = Api::expect_error(api.post(&path, t, &body).await, code);
        assert!(!msg.contains("{ "), "no Debug dumps: {msg}");
    }
    // Malformed ids in paths.
    for bad in [short_id.as_str(), "%FF%FE", "a.b", "x"] {
        Api::expect_error(api.get(&format!("/v1/spaces/{bad}/files"), t).await, InvalidInput);
        Api::expect_error(api.get(&format!("/v1/spaces/{bad}/usage"), t).await, InvalidInput);
        Api::expect_error(api.get(&format!("{}/{bad}", space.path("/files")), t).await, InvalidInput);
        Api::expect_error(api.delete(&format!("{}/{bad}", space.path("/files")), t).await, InvalidInput);
    }
    // Nothing was created by any of it.
    assert!(ada.files(&api, &space).await.unwrap().is_empty());
    let list: SpaceListResponse = ada.get_json(&api, "/v1/spaces").await.unwrap();
    assert_eq!(list.spaces.len(), 1);
    // The JSON routes keep their 1 MiB limit.
    let huge = json!({"spaceId": new_id(), "sealedName": "A".repeat(2 * 1024 * 1024), "rosterMac": mac});
    Api::expect_error(api.post("/v1/spaces", t, &huge).await, TooLarge);
    // Every space route needs a session.
    Api::expect_error(api.get(&space.path("/files"), None).await, Unauthorized);
    Api::expect_error(api.post(&space.path("/leave"), None, &json!({})).await, Unauthorized);
    assert!(api.healthy().await);
}

/// `len` random bytes in base64url.
fn sealed_text(len: usize) -> String {
    common::sealed(len)
}
