//! Change fan-out across accelerators: with PostgreSQL, several accelerators serve
//! one deployment, and a device's feed may be open on one while another takes its
//! other device's write. Every kv write notifies its user id on commit
//! ([`crate::store::postgres::listen::FEED_CHANNEL`]); here each accelerator listens on a
//! connection of its own and wakes the feeds of that user, which read the log by
//! cursor as they always do.
//!
//! A notification can be lost (the listening connection broke, the database
//! restarted), so the feeds are also all woken when listening (re)starts and every
//! [`crate::Config::feed_catch_up`]: a lost notification delays an event by at most
//! that much, and never loses it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::hub::FeedHub;
use crate::store::postgres::listen::{Heard, listen};

/// The longest wait between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Wakes `hub`'s feeds on what the database at `config` notifies, and all of them
/// every `catch_up`, until `shutdown` turns true.
pub async fn run(
    config: tokio_postgres::Config,
    hub: Arc<FeedHub>,
    catch_up: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (heard_tx, mut heard) = mpsc::channel(1024);
    let listener = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match listen(&config, &heard_tx).await {
                Ok(()) => return,
                Err(err) => tracing::warn!(%err, "listening for other accelerators' changes failed; retrying"),
            }
            if started.elapsed() > MAX_BACKOFF {
                backoff = Duration::from_millis(100);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
    let mut tick = tokio::time::interval(catch_up.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            news = heard.recv() => match news {
                Some(Heard::Changed(user_id)) => hub.wake(&user_id),
                Some(Heard::Listening) => hub.wake_all(),
                None => break,
            },
            _ = tick.tick() => hub.wake_all(),
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break },
        }
    }
    listener.abort();
}
