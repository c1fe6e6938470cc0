//! The change feed over real websockets: authentication, replay, resync, isolation,
//! and no lost, duplicated or reordered events across cuts (holes only where a
//! change was replaced by a later one of the same key, SPEC.md §7.3).

mod common;

use std::time::Duration;

use coffer_core::ErrorCode;
use coffer_core::kv::KvScope;
use coffer_core::proto::*;
use common::*;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_first_frame_must_authenticate() {
    let server = TestServer::start(|c| c.feed_auth_timeout = Duration::from_millis(200)).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;

    let mut feed = Feed::connect(&server).await;
    feed.send_text("hello").await;
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;

    let mut feed = Feed::connect(&server).await;
    feed.send_text(r#"{"type":"auth","since":3}"#).await;
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;

    let mut feed = Feed::connect(&server).await;
    feed.auth("forged-token", None).await;
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;

    let mut feed = Feed::connect(&server).await;
    futures_util::SinkExt::send(&mut feed.ws, Message::Binary(ada.token().as_bytes().to_vec().into())).await.unwrap();
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;

    // Silence past the auth timeout.
    let mut feed = Feed::connect(&server).await;
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;

    // And the right frame works.
    let (_feed, head) = Feed::open(&server, ada.token(), None).await;
    assert_eq!(head, 0);
}

#[tokio::test]
async fn replays_from_since_then_goes_live() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    ada.set(&api, "todos", "t1", r#"{"n":1}"#, true).await;
    ada.set(&api, "todos", "t2", r#"{"n":2}"#, false).await;
    ada.delete(&api, "todos", "t1").await;

    let (mut feed, head) = Feed::open(&server, ada.token(), Some(0)).await;
    assert_eq!(head, 3);
    // The set of t1 (seq 1) was replaced by its delete (seq 3): the log keeps only
    // the latest change of a key, and replaying what is left ends in the same state.
    let e2 = feed.change().await;
    assert_eq!((e2.seq, e2.collection.as_str(), e2.id.as_str(), e2.op), (2, "todos", "t2", ChangeOp::Set));
    assert!(matches!(e2.value, Some(KvValue::Plain { .. })));
    let e3 = feed.change().await;
    assert_eq!((e3.seq, e3.id.as_str(), e3.op, e3.value), (3, "t1", ChangeOp::Delete, None));
    // Live.
    ada.set(&api, "todos", "t3", r#"{"n":3}"#, true).await;
    let e4 = feed.change().await;
    assert_eq!(e4.seq, 4);
    let scope = KvScope { user_id: ada.user_id(), collection: "todos", id: "t3" };
    assert_eq!(ada.keys.decode(&scope, e4.value.as_ref().unwrap()).unwrap(), r#"{"n":3}"#);
    drop(feed);

    // Reconnecting from the last seen sequence number replays only what was missed.
    ada.set(&api, "todos", "t4", "4", true).await;
    ada.set(&api, "todos", "t5", "5", true).await;
    let (mut feed, head) = Feed::open(&server, ada.token(), Some(4)).await;
    assert_eq!(head, 6);
    assert_eq!(feed.change().await.id, "t4");
    assert_eq!(feed.change().await.id, "t5");

    // `since: None` starts at the head: no replay, the next change is live.
    let (mut live, head) = Feed::open(&server, ada.token(), None).await;
    assert_eq!(head, 6);
    ada.set(&api, "todos", "t6", "6", true).await;
    let e = live.change().await;
    assert_eq!((e.seq, e.id.as_str()), (7, "t6"));
    assert_eq!(feed.change().await.seq, 7, "every open feed of the user sees it");
}

#[tokio::test]
async fn resync_when_too_far_behind() {
    let server = TestServer::start(|c| c.change_log_retain = 5).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    for i in 1..=12 {
        ada.set(&api, "c", &format!("k{i}"), "1", true).await;
    }
    // Retained: 8..=12. From 7, everything needed is there.
    let (mut feed, head) = Feed::open(&server, ada.token(), Some(7)).await;
    assert_eq!(head, 12);
    for seq in 8..=12 {
        assert_eq!(feed.change().await.seq, seq);
    }
    drop(feed);

    // From 6, change 7 is gone: resync to the head, then live.
    let (mut feed, _) = Feed::open(&server, ada.token(), Some(6)).await;
    assert_eq!(feed.next().await, Some(ServerFrame::Resync { seq: 12 }));
    ada.set(&api, "c", "k13", "1", true).await;
    assert_eq!(feed.change().await.seq, 13);

    // A sequence number from the future (another server's, a wiped database) too.
    let (mut feed, head) = Feed::open(&server, ada.token(), Some(99)).await;
    assert_eq!(head, 13);
    assert_eq!(feed.next().await, Some(ServerFrame::Resync { seq: 13 }));
    ada.set(&api, "c", "k14", "1", true).await;
    assert_eq!(feed.change().await.seq, 14);
}

#[tokio::test]
async fn a_user_sees_only_their_own_changes() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    let (mut bobs, _) = Feed::open(&server, bob.token(), Some(0)).await;
    let (mut adas, _) = Feed::open(&server, ada.token(), Some(0)).await;
    for i in 0..5 {
        ada.set(&api, "todos", &format!("ada-{i}"), "1", true).await;
    }
    for i in 0..5 {
        assert_eq!(adas.change().await.id, format!("ada-{i}"));
    }
    bob.set(&api, "todos", "bob-0", "1", true).await;
    let e = bobs.change().await;
    assert_eq!((e.seq, e.id.as_str()), (1, "bob-0"), "Bob's first event is his own");
    // Bob cannot replay Ada's log either: his own head is 1.
    let (mut again, head) = Feed::open(&server, bob.token(), Some(0)).await;
    assert_eq!(head, 1);
    assert_eq!(again.change().await.id, "bob-0");
}

#[tokio::test]
async fn signing_out_closes_the_feed() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let (mut feed, _) = Feed::open(&server, ada.token(), None).await;
    let (status, _) = api.post("/v1/auth/signout", Some(ada.token()), &()).await;
    assert_eq!(status, 204);
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;
    // A revoked token cannot open a new one.
    let mut feed = Feed::connect(&server).await;
    feed.auth(ada.token(), None).await;
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;
}

#[tokio::test]
async fn a_password_change_closes_the_other_sessions_feeds() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "old").await;
    let laptop = sign_in(&api, "ada", "old").await.unwrap();
    let (mut laptop_feed, _) = Feed::open(&server, &laptop.token, None).await;
    let (mut own_feed, _) = Feed::open(&server, ada.token(), None).await;

    let ch = challenge(&api, "ada").await;
    let login = sign_challenge(&api, "ada", "old", &ch).await;
    let fresh = sign_up_request("ada", "new", &ada.root);
    let req = ChangePasswordRequest {
        origin: login.origin,
        challenge_id: login.challenge_id,
        signature: login.signature,
        salt: fresh.salt,
        kdf: fresh.kdf,
        login_public_key: fresh.login_public_key,
        wrapped_root: fresh.wrapped_root,
    };
    api.call::<SessionInfo>("/v1/auth/password", Some(ada.token()), &req).await.unwrap();
    laptop_feed.expect_error_and_close(ErrorCode::Unauthorized).await;
    // The session that changed the password keeps its feed.
    ada.set(&api, "c", "i", "1", true).await;
    assert_eq!(own_feed.change().await.seq, 1);
}

#[tokio::test]
async fn long_replays_arrive_whole_and_in_order() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    for i in 1..=150 {
        ada.set(&api, "c", &format!("k{i}"), "1", i % 2 == 0).await;
    }
    let (mut feed, head) = Feed::open(&server, ada.token(), Some(0)).await;
    assert_eq!(head, 150);
    for seq in 1..=150 {
        let event = feed.change().await;
        assert_eq!((event.seq, event.id), (seq, format!("k{seq}")));
    }
    ada.set(&api, "c", "live", "1", true).await;
    assert_eq!(feed.change().await.seq, 151);
}

#[tokio::test]
async fn an_expired_session_cannot_open_a_feed() {
    let server = TestServer::start(|c| c.session_ttl = Duration::ZERO).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let mut feed = Feed::connect(&server).await;
    feed.auth(ada.token(), None).await;
    feed.expect_error_and_close(ErrorCode::Unauthorized).await;
}

#[tokio::test]
async fn idle_feeds_are_pinged() {
    let server = TestServer::start(|c| c.feed_ping_interval = Duration::from_millis(50)).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let (mut feed, _) = Feed::open(&server, ada.token(), None).await;
    loop {
        let msg = tokio::time::timeout(PATIENCE, feed.ws.next()).await.unwrap().unwrap().unwrap();
        if matches!(msg, Message::Ping(_)) {
            break;
        }
    }
    // Still serving after the ping.
    ada.set(&api, "c", "i", "1", true).await;
    assert_eq!(feed.change().await.seq, 1);
}

#[tokio::test]
async fn shutdown_closes_open_feeds() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let (mut feed, _) = Feed::open(&server, ada.token(), None).await;
    let reader = tokio::spawn(async move {
        let mut frames = Vec::new();
        while let Some(frame) = feed.next().await {
            frames.push(frame);
        }
        frames
    });
    server.stop().await;
    let frames = reader.await.unwrap();
    assert!(matches!(frames.as_slice(), [ServerFrame::Error(_)]), "{frames:?}");
}

/// One write as the writer made it, to compare the feed against.
#[derive(Debug, Clone, PartialEq)]
struct Written {
    /// The change's sequence number.
    seq: u64,
    /// The id written.
    id: String,
    /// The JSON set, or `None` for a delete.
    json: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_while_writes_continue_lose_nothing() {
    const WRITES: usize = 300;
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let writer_device = sign_in(&api, "ada", "pw").await.unwrap();

    // Another task writes steadily: sets over a few ids, and deletes of present ones,
    // then a last "done" marker.
    let writer = {
        let api = api.clone();
        let token = writer_device.token.clone();
        let keys = coffer_core::kv::KvKeys::derive(&ada.root);
        let user_id = ada.user_id().to_owned();
        tokio::spawn(async move {
            let mut written = Vec::new();
            let mut present = std::collections::BTreeSet::new();
            for i in 0..WRITES {
                let id = if i + 1 == WRITES { "done".to_string() } else { format!("k{}", i % 7) };
                if i % 5 == 4 && present.remove(&id) {
                    let req = KvKeyRequest { collection: "c".into(), id: id.clone() };
                    let answer: KvDeleteResponse = api.call("/v1/kv/delete", Some(&token), &req).await.unwrap();
                    written.push(Written { seq: answer.seq.unwrap(), id, json: None });
                } else {
                    let json = format!(r#"{{"i":{i}}}"#);
                    let scope = KvScope { user_id: &user_id, collection: "c", id: &id };
                    let value = keys.encode(&scope, &json, i % 3 != 0, random());
                    let req = KvSetRequest { collection: "c".into(), id: id.clone(), value };
                    let answer: KvWriteResponse = api.call("/v1/kv/set", Some(&token), &req).await.unwrap();
                    present.insert(id.clone());
                    written.push(Written { seq: answer.seq, id, json: Some(json) });
                }
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            written
        })
    };

    // The reader takes a few events, cuts the socket without a close frame, and
    // resumes from the last sequence number it saw, until the "done" marker.
    let mut seen: Vec<Written> = Vec::new();
    let mut last = 0u64;
    let mut round = 0usize;
    'reconnect: loop {
        round += 1;
        let (mut feed, _) = Feed::open(&server, ada.token(), Some(last)).await;
        let take = round * 7 % 13; // 0..=12 events, then the cut
        for _ in 0..take {
            let event = feed.change().await;
            // In order, never repeated; holes only where a change was replaced
            // (SPEC.md §7.3), checked against what was written below.
            assert!(event.seq > last, "in order, never repeated ({last} then {})", event.seq);
            last = event.seq;
            let scope = KvScope { user_id: ada.user_id(), collection: &event.collection, id: &event.id };
            let json = event.value.as_ref().map(|v| ada.keys.decode(&scope, v).expect("value opens"));
            let done = event.id == "done";
            seen.push(Written { seq: event.seq, id: event.id, json });
            if done {
                break 'reconnect;
            }
        }
        drop(feed); // the cut: no close handshake
    }
    let written = writer.await.unwrap();
    assert!(round > 10, "the stream was cut many times ({round})");
    assert_eq!(written.len(), WRITES);
    // Every change the reader got is the one written under its sequence number, and
    // every change it missed was replaced by a later change of the same key, which
    // it got (or which was itself replaced): applying what arrived ends where the
    // writes ended.
    let by_seq: std::collections::BTreeMap<u64, &Written> = written.iter().map(|w| (w.seq, w)).collect();
    for event in &seen {
        assert_eq!(Some(&event), by_seq.get(&event.seq), "an event is the change written under its seq");
    }
    let got: std::collections::BTreeSet<u64> = seen.iter().map(|w| w.seq).collect();
    for (i, w) in written.iter().enumerate() {
        let replaced = written[i + 1..].iter().any(|later| later.id == w.id);
        assert!(got.contains(&w.seq) || replaced, "change {} of {} was neither delivered nor replaced", w.seq, w.id);
    }
    assert!(api.healthy().await);
}
