//! Hears other accelerators' kv writes: a connection of its own that `LISTEN`s on
//! [`KV_CHANNEL`], where every kv write notifies its user id on commit.

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::kv::KV_CHANNEL;

/// What the listening connection hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening (again): notifications sent while it was not may be lost, so
    /// every feed should read its log.
    Listening,
    /// This user's change log grew.
    Changed(String),
}

/// Connects to `config`'s database, listens on [`KV_CHANNEL`] and hands what it
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
    client.batch_execute(&format!("LISTEN {KV_CHANNEL}")).await?;
    if heard.send(Heard::Listening).await.is_err() {
        driver.abort();
        return Ok(());
    }
    let result = loop {
        match messages.recv().await {
            Some(Ok(AsyncMessage::Notification(note))) if note.channel() == KV_CHANNEL => {
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
