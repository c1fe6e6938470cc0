//! Several accelerators on one PostgreSQL database: a device's feed on one hears
//! the writes another takes, and closes when its session is signed out on another
//! ([`coffer_accelerator::fanout`]); a lost notification delays an event but never
//! loses it.

mod common;

use std::time::Duration;

use common::*;

/// Long enough that only a notification can deliver an event within the test.
const NO_CATCH_UP: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn devices_on_two_accelerators_see_each_others_changes_live() {
    let one = TestServer::start_on(tempfile::tempdir().unwrap(), Data::postgres().await, |c| {
        c.feed_catch_up = NO_CATCH_UP;
    })
    .await;
    let two = one.another(|c| c.feed_catch_up = NO_CATCH_UP).await;
    let ada = sign_up(&one.api(), "ada", "pw").await;
    let (mut on_one, head) = Feed::open(&one, ada.token(), None).await;
    let (mut on_two, _) = Feed::open(&two, ada.token(), None).await;
    assert_eq!(head, 0);

    let seq = ada.set(&two.api(), "c", "k", "1", false).await;
    let change = on_one.change().await;
    assert_eq!((change.seq, change.id.as_str()), (seq, "k"), "a write on two reaches a feed on one");
    assert_eq!(on_two.change().await.seq, seq);

    let seq = ada.set(&one.api(), "c", "j", "2", false).await;
    assert_eq!(on_two.change().await.seq, seq, "and the other way");
    assert_eq!(on_one.change().await.seq, seq);
}

#[tokio::test]
async fn a_feed_hears_writes_made_while_its_accelerator_was_not_listening() {
    let data = Data::postgres().await;
    let Data::Remote { db, .. } = &data else { unreachable!() };
    let admin = db.client().await;
    let one = TestServer::start_on(tempfile::tempdir().unwrap(), data, |c| c.feed_catch_up = NO_CATCH_UP).await;
    let ada = sign_up(&one.api(), "ada", "pw").await;
    let (mut feed, _) = Feed::open(&one, ada.token(), None).await;

    // The accelerator's listening connection breaks (the database restarted, a
    // proxy cut it), and a change is written and notified in the same moment:
    // nobody hears it.
    eventually("the accelerator listens", || {
        let admin = &admin;
        async move { listening(admin).await == 1 }
    })
    .await;
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                    WHERE datname = current_database() AND query LIKE 'LISTEN%';
                                  {}",
            quiet_change(ada.user_id())
        ))
        .await
        .unwrap();
    // Listening again, the accelerator has every feed read its log.
    let change = feed.change().await;
    assert_eq!((change.seq, change.id.as_str()), (1, "quiet"));
}

/// How many connections listen on the database.
async fn listening(admin: &tokio_postgres::Client) -> i64 {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'";
    admin.query_one(sql, &[]).await.unwrap().get(0)
}

/// SQL that writes a change to `user_id`'s log and notifies it, as a kv write does.
fn quiet_change(user_id: &str) -> String {
    format!(
        "BEGIN;
         UPDATE users SET kv_seq = kv_seq + 1 WHERE user_id = '{user_id}';
         INSERT INTO kv_changes (user_id, seq, collection, id, plain_json, plain_mac)
             SELECT user_id, kv_seq, 'c', 'quiet', '1', '\\x{mac}'::bytea FROM users WHERE user_id = '{user_id}';
         SELECT pg_notify('coffer_kv', '{user_id}');
         COMMIT;",
        mac = "00".repeat(32),
    )
}

#[tokio::test]
async fn without_notifications_every_feed_still_catches_up() {
    let data = Data::postgres().await;
    let one = TestServer::start_on(tempfile::tempdir().unwrap(), data, |c| {
        c.feed_catch_up = Duration::from_millis(200);
    })
    .await;
    let Data::Remote { db, .. } = &one.data else { unreachable!() };
    let ada = sign_up(&one.api(), "ada", "pw").await;
    let (mut feed, _) = Feed::open(&one, ada.token(), None).await;
    // A change written straight into the log, as a write whose notification was
    // lost leaves it: no accelerator is told.
    let admin = db.client().await;
    admin.batch_execute(&quiet_change(ada.user_id()).replace("SELECT pg_notify", "-- SELECT pg_notify")).await.unwrap();
    let change = feed.change().await;
    assert_eq!((change.seq, change.id.as_str()), (1, "quiet"), "read at the next catch-up");
}

#[tokio::test]
async fn signing_out_on_one_accelerator_closes_the_feed_on_another() {
    let quiet = |c: &mut coffer_accelerator::Config| {
        c.feed_catch_up = NO_CATCH_UP;
        c.feed_ping_interval = NO_CATCH_UP;
    };
    let one = TestServer::start_on(tempfile::tempdir().unwrap(), Data::postgres().await, quiet).await;
    let two = one.another(quiet).await;
    let ada = sign_up(&one.api(), "ada", "pw").await;
    let (mut feed, _) = Feed::open(&two, ada.token(), None).await;
    let (status, _) = one.api().post("/v1/auth/signout", Some(ada.token()), &()).await;
    assert_eq!(status, 204);
    // Neither a catch-up nor a ping comes within the test: the notification does it.
    feed.expect_error_and_close(coffer_core::ErrorCode::Unauthorized).await;
}
