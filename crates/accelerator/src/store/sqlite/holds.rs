//! Holds on shard addresses ([`crate::store::Files::hold_shards`]) within this
//! process: a SQLite database serves one accelerator, so that is as far as a hold
//! needs to reach.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use coffer_core::shard::ShardAddress;
use tokio::sync::Notify;

use crate::store::ShardHold;

/// The addresses held now, and those waiting for one.
#[derive(Default)]
pub(super) struct Holds {
    /// Held now, each by one [`Held`].
    held: Mutex<HashSet<ShardAddress>>,
    /// Wakes the waiters when a hold is released.
    released: Notify,
}

/// Some addresses held; released when dropped (also half-way, when a wait for the
/// rest is given up).
struct Held {
    /// Where they are held.
    holds: Arc<Holds>,
    /// Which.
    addresses: Vec<ShardAddress>,
}

impl Holds {
    /// Holds every one of `addresses`, taken in ascending order, waiting for each
    /// while another holder has it.
    pub(super) async fn hold(self: &Arc<Self>, addresses: &[ShardAddress]) -> ShardHold {
        let mut wanted = addresses.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut held = Held { holds: Arc::clone(self), addresses: Vec::with_capacity(wanted.len()) };
        for address in wanted {
            loop {
                // Made before the check, so a release between the check and the
                // wait still wakes it.
                let released = self.released.notified();
                if self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(address) {
                    held.addresses.push(address);
                    break;
                }
                released.await;
            }
        }
        ShardHold::new(held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.addresses.is_empty() {
            return;
        }
        let mut held = self.holds.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for address in &self.addresses {
            held.remove(address);
        }
        drop(held);
        self.holds.released.notify_waiters();
    }
}
