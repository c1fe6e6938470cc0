//! The kv routes over real HTTP: round trips, isolation between users, and what
//! reaches the disk.

mod common;

use coffer_core::proto::*;
use common::*;

#[tokio::test]
async fn round_trip_sealed_and_plain() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;

    assert_eq!(ada.get(&api, "todos", "t1").await, None);
    assert_eq!(ada.set(&api, "todos", "t1", r#"{"title":"Ship docs","done":false}"#, true).await, 1);
    assert_eq!(ada.set(&api, "todos", "t2", r#"{"title":"Write tests"}"#, false).await, 2);
    assert_eq!(ada.set(&api, "todos", "t1", r#"{"title":"Ship docs","done":true}"#, true).await, 3);
    assert_eq!(ada.set(&api, "$files", "f1", "[1,2,3]", true).await, 4, "the SDK's own collections are allowed");
    assert_eq!(ada.get(&api, "todos", "t1").await.as_deref(), Some(r#"{"title":"Ship docs","done":true}"#));
    assert_eq!(ada.get(&api, "todos", "t2").await.as_deref(), Some(r#"{"title":"Write tests"}"#));
    assert_eq!(ada.list(&api, "todos").await, ["t1", "t2"]);
    assert_eq!(ada.list(&api, "$files").await, ["f1"]);
    assert!(ada.list(&api, "nothing-here").await.is_empty());

    let gone = ada.delete(&api, "todos", "t1").await;
    assert_eq!((gone.existed, gone.seq), (true, Some(5)));
    let again = ada.delete(&api, "todos", "t1").await;
    assert_eq!((again.existed, again.seq), (false, None), "deleting nothing logs nothing");
    assert_eq!(ada.get(&api, "todos", "t1").await, None);
    assert_eq!(ada.list(&api, "todos").await, ["t2"]);

    let info: SessionInfo = serde_json::from_value(api.get("/v1/auth/session", Some(ada.token())).await.1).unwrap();
    assert_eq!(info.kv_seq, 5);

    // A missing key is an ordinary answer with a null value, not an error status.
    let key = KvKeyRequest { collection: "todos".into(), id: "t1".into() };
    let (status, body) = api.post("/v1/kv/get", Some(ada.token()), &key).await;
    assert_eq!((status.as_u16(), body), (200, serde_json::json!({ "value": null })));
}

#[tokio::test]
async fn list_is_in_byte_order() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    for id in ["b", "a", "é", "B", "a0", "Z"] {
        ada.set(&api, "c", id, "1", true).await;
    }
    assert_eq!(ada.list(&api, "c").await, ["B", "Z", "a", "a0", "b", "é"]);
}

#[tokio::test]
async fn one_user_cannot_reach_another_users_keys() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    ada.set(&api, "todos", "t1", r#""ada's""#, true).await;
    ada.set(&api, "notes", "n1", r#""ada's plain""#, false).await;

    assert_eq!(bob.get(&api, "todos", "t1").await, None);
    assert!(bob.list(&api, "todos").await.is_empty());
    assert!(bob.list(&api, "notes").await.is_empty());
    let del = bob.delete(&api, "todos", "t1").await;
    assert!(!del.existed);

    // Bob writing the same key makes his own value, not a change to Ada's.
    bob.set(&api, "todos", "t1", r#""bob's""#, true).await;
    assert_eq!(ada.get(&api, "todos", "t1").await.as_deref(), Some(r#""ada's""#));
    assert_eq!(bob.get(&api, "todos", "t1").await.as_deref(), Some(r#""bob's""#));
    assert_eq!(ada.get(&api, "notes", "n1").await.as_deref(), Some(r#""ada's plain""#));
    assert_eq!(ada.list(&api, "todos").await, ["t1"]);

    // Bob's sequence numbers are his own.
    let info: SessionInfo = serde_json::from_value(api.get("/v1/auth/session", Some(bob.token())).await.1).unwrap();
    assert_eq!(info.kv_seq, 1);
}

/// Every file under `dir`, read whole.
fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            return files_contain(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[tokio::test]
async fn sealed_values_never_reach_the_disk_in_plaintext_plain_ones_do() {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let sealed_marker = "sealed-marker-7f3a9c1e";
    let plain_marker = "plain-marker-4b2d8e6f";
    ada.set(&api, "secrets", "s1", &format!(r#"{{"x":"{sealed_marker}"}}"#), true).await;
    ada.set(&api, "public", "p1", &format!(r#"{{"x":"{plain_marker}"}}"#), false).await;
    assert!(files_contain(server.dir.path(), plain_marker.as_bytes()), "plaintext is stored as the user chose");
    assert!(!files_contain(server.dir.path(), sealed_marker.as_bytes()), "a sealed value's plaintext is on disk");
    assert!(!files_contain(server.dir.path(), ada.token().as_bytes()), "session tokens are stored hashed");
}
