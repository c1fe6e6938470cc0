//! Hears other accelerators' writes that a user's feeds must act on: a connection
//! of its own that `LISTEN`s on [`FEED_CHANNEL`], where every kv write and every
//! session revocation notifies its user id on commit ([`wake_feeds`]).

use deadpool_postgres::GenericClient;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Failure, exec};

/// The channel a user's feeds are woken on, with the user id as the payload: after
/// a kv write (the feed reads its log) and after a session of theirs is revoked (a
/// feed on that session closes). The name is kept from when only kv writes used it,
/// so accelerators of both versions hear each other.
pub const FEED_CHANNEL: &str = "coffer_kv";

/// Has every accelerator wake `user_id`'s feeds once the transaction commits (none
/// if it does not).
pub(super) async fn wake_feeds(tx: &impl GenericClient, user_id: &str) -> Result<(), Failure> {
    exec(tx, "SELECT pg_notify($1, $2)", &[&FEED_CHANNEL, &user_id]).await.map(drop)
}

/// What the listening connection hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening (again): notifications sent while it was not may be lost, so
    /// every feed should read its log.
    Listening,
    /// This user's change log grew, or a session of theirs was revoked.
    Changed(String),
}

/// Connects to `config`'s database, listens on [`FEED_CHANNEL`] and hands what it
/// hears to `heard`, until the connection fails (the error is returned: the
/// caller reconnects) or `heard` is closed (`Ok`).
pub async fn listen(config: &tokio_postgres::Config, heard: &mpsc::Sender<Heard>) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection is driven here, by reading its messages; the client's query
    // goes out as they are read.
    let (messages_tx, mut messages) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            let end = message.is_err();
            if messages_tx.send(message).is_err() || end {
                return;
            }
        }
    });
    client.batch_execute(&format!("LISTEN {FEED_CHANNEL}")).await?;
    if heard.send(Heard::Listening).await.is_err() {
        driver.abort();
        return Ok(());
    }
    let result = loop {
        match messages.recv().await {
            Some(Ok(AsyncMessage::Notification(note))) if note.channel() == FEED_CHANNEL => {
                if heard.send(Heard::Changed(note.payload().to_owned())).await.is_err() {
                    break Ok(());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => break Err(err),
            // The connection closed without an error: ask for it again.
            None => break client.simple_query("SELECT 1").await.map(drop),
        }
    };
    driver.abort();
    result
}
