//! What every route shares: the records and shards, limits, the feed hub, and
//! the clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Semaphore, mpsc, watch};

use crate::config::Config;
use crate::error::ApiError;
use crate::hub::FeedHub;
use crate::secret::ServerSecret;
use crate::store::keeper::ShardKeeper;
use crate::store::{Records, Withdrawn};
use crate::throttle::Throttle;

/// What every handler shares. Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    /// The records backend, behind the [`Records`] traits so it can be swapped.
    pub(crate) records: Arc<dyn Records>,
    /// The shard store with the same records, kept in step ([`crate::gc`]).
    pub(crate) keeper: Arc<ShardKeeper>,
    /// Limits and lifetimes the handlers apply.
    pub config: Arc<Config>,
    /// Key for the stable made-up salts of unknown usernames, and the accelerator's
    /// X25519 key pair that proofs of the root are made to ([`ServerSecret`]).
    pub secret: Arc<ServerSecret>,
    /// Wakes feed websockets when their user's change log grows.
    pub feed: Arc<FeedHub>,
    /// Becomes `true` when the server shuts down, so feed websockets close.
    pub shutdown: watch::Receiver<bool>,
    /// Held by every feed task; `run` waits until all are dropped.
    pub feed_alive: mpsc::Sender<()>,
    /// Sign-in rate limits.
    pub throttle: Arc<Throttle>,
    /// Room for feed websockets that have not authenticated yet.
    pub unauthenticated_sockets: Arc<Semaphore>,
    /// Bytes large request bodies may hold in memory, in KiB permits ([`crate::budget`]).
    pub body_budget: Arc<Semaphore>,
    /// Large request bodies in flight per user.
    pub bodies_per_user: Arc<crate::per_user::PerUser>,
    /// Pieces of shards being read from the store at this moment.
    pub shard_reads: Arc<Semaphore>,
}

impl AppState {
    /// Takes a withdrawn file or space apart, a step at a time, freeing the shards no
    /// file uses any more ([`ShardKeeper::unwind`]).
    pub async fn unwind(&self, what: Withdrawn) -> Result<usize, ApiError> {
        Ok(self.keeper.unwind(&what).await?)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `now_ms() + ttl`, saturating.
pub fn expiry_ms(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}
