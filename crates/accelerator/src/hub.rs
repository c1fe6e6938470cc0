//! Wakes a user's open feeds ([`crate::routes::feed`]) after their change log grows
//! or one of their sessions is revoked. It carries no data: a woken feed reads the
//! log by cursor, so a wake-up lost or repeated delays or repeats a read, never a
//! change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Wakes the open feeds of a user after their change log grows, or after one of
/// their sessions is revoked.
#[derive(Default)]
pub struct FeedHub {
    /// One watch channel per user with an open feed. The value is a wake-up count;
    /// only its changing matters.
    users: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl FeedHub {
    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts listening for `user_id`'s wake-ups, unless the user already has
    /// `cap` feeds open.
    pub fn subscribe(self: &Arc<Self>, user_id: &str, cap: usize) -> Option<Subscription> {
        let mut users = self.users();
        let tx = users.entry(user_id.to_owned()).or_insert_with(|| watch::channel(0).0);
        if tx.receiver_count() >= cap {
            return None;
        }
        Some(Subscription { rx: Some(tx.subscribe()), hub: Arc::clone(self), user_id: user_id.to_owned() })
    }

    /// Wakes every open feed, so each reads its log: after wake-ups may have been
    /// lost (another accelerator's, while not listening), and now and then in case.
    pub fn wake_all(&self) {
        for tx in self.users().values() {
            tx.send_modify(|count| *count = count.wrapping_add(1));
        }
    }

    /// Wakes every open feed of `user_id` (none open: nothing to do).
    pub fn wake(&self, user_id: &str) {
        if let Some(tx) = self.users().get(user_id) {
            tx.send_modify(|count| *count = count.wrapping_add(1));
        }
    }
}

/// One feed's registration with the [`FeedHub`]; unregisters on drop.
pub struct Subscription {
    /// The receiving end; `None` only while dropping.
    rx: Option<watch::Receiver<u64>>,
    /// The hub, to remove the user's channel when the last feed goes.
    hub: Arc<FeedHub>,
    /// Whose wake-ups these are.
    user_id: String,
}

impl Subscription {
    /// Waits for the next wake-up.
    pub async fn woken(&mut self) {
        match self.rx.as_mut() {
            // The hub keeps the sender while any receiver lives, so this never errs.
            Some(rx) => {
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut users = self.hub.users();
        drop(self.rx.take());
        if users.get(&self.user_id).is_some_and(|tx| tx.receiver_count() == 0) {
            users.remove(&self.user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hub_wakes_only_its_user_and_forgets_closed_feeds() {
        let hub = Arc::new(FeedHub::default());
        let mut ada = hub.subscribe("ada", 2).unwrap();
        let ada2 = hub.subscribe("ada", 2).unwrap();
        assert!(hub.subscribe("ada", 2).is_none(), "at the cap");
        let mut bob = hub.subscribe("bob", 2).unwrap();
        hub.wake("ada");
        ada.woken().await;
        assert!(!bob.rx.as_mut().unwrap().has_changed().unwrap(), "bob is not woken by ada's writes");
        drop(ada);
        assert!(hub.users().contains_key("ada"), "ada still has a feed");
        drop(ada2);
        assert!(!hub.users().contains_key("ada"));
        drop(bob);
        assert!(hub.users().is_empty());
        hub.wake("nobody");
    }
}
