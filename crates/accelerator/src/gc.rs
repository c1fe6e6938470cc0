//! The collector: once at start it sweeps shard bytes that have no record (left by
//! a crash), then every [`crate::Config::gc_interval`] it runs
//! [`ShardKeeper::collect`] — expired uploads, commits the accelerator stopped
//! under, and shards no file references that have gone
//! [`crate::Config::shard_grace`] without being stored again. Why no committed file
//! ever points at a collected shard: [`crate::store::keeper`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::state::now_ms;
use crate::store::keeper::ShardKeeper;

/// The collector: sweeps shards without a record once, then every `interval`
/// collects unreferenced shards older than `grace`, until `shutdown` turns true.
pub async fn run(keeper: Arc<ShardKeeper>, grace: Duration, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut swept = 0;
    for byte in 0..=255u8 {
        if *shutdown.borrow() {
            return;
        }
        match keeper.sweep_unrecorded(&format!("{byte:02x}")).await {
            Ok(n) => swept += n,
            Err(e) => tracing::error!(%e, "shard sweep failed"),
        }
    }
    if swept > 0 {
        tracing::info!(swept, "removed shards that had no record");
    }

    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
        }
        let now = now_ms();
        let stored_before_ms = now.saturating_sub(grace_ms);
        match keeper.collect(now, stored_before_ms).await {
            Ok(0) => {}
            Err(e) => tracing::error!(%e, "shard collection failed"),
            Ok(freed) => tracing::info!(freed, "collected unreferenced shards"),
        }
    }
}
