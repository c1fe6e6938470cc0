//! Serving: opens the records and the shard store, builds the shared state, starts
//! the shard collector, and runs the accept loop until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::backends::{self, Database, Opened};
use crate::config::Config;
use crate::hub::FeedHub;
use crate::listener::{self, Gate};
use crate::routes::router;
use crate::state::AppState;
use crate::store::keeper::ShardKeeper;
use crate::throttle::Throttle;
use crate::{fanout, gc};

/// Opens the records and the shard store, starts the collector, then serves
/// `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Opened { database, records, shards, secret, lock } = backends::open(&config).await?;
    let keeper = Arc::new(ShardKeeper::new(Arc::clone(&records), shards));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (feed_alive, mut feeds_done) = mpsc::channel::<()>(1);
    let collector =
        tokio::spawn(gc::run(Arc::clone(&keeper), config.shard_grace, config.gc_interval, shutdown_rx.clone()));
    let mut config = config;
    if config.public_origins.is_empty() {
        config.public_origins = crate::config::default_origins(listener.local_addr()?);
    }
    let limits = config.limits.clone();
    let feed = Arc::new(FeedHub::default());
    // Other accelerators on the same records wake this one's feeds.
    let fanout = match &database {
        Database::Postgres(url) => {
            let pg = url.parse().map_err(|e| std::io::Error::other(format!("bad PostgreSQL URL: {e}")))?;
            Some(tokio::spawn(fanout::run(pg, Arc::clone(&feed), config.feed_catch_up, shutdown_rx.clone())))
        }
        Database::Sqlite(_) => None,
    };
    let state = AppState {
        records,
        keeper,
        throttle: Arc::new(Throttle::new(&limits)),
        unauthenticated_sockets: Arc::new(Semaphore::new(limits.max_unauthenticated_sockets)),
        body_budget: Arc::new(Semaphore::new(crate::budget::permits(limits.body_buffer_bytes))),
        bodies_per_user: Arc::new(crate::per_user::PerUser::new(limits.max_uploads_per_user)),
        shard_reads: Arc::new(Semaphore::new(limits.max_concurrent_shard_reads.max(1))),
        config: Arc::new(config),
        secret: Arc::new(secret),
        feed,
        shutdown: shutdown_rx,
        feed_alive,
    };
    let app = router(state);

    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    };
    listener::serve(listener, app, &limits, Arc::new(Gate::default()), signal).await?;

    // Every clone of the state is gone once the last feed task ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), feeds_done.recv()).await;
    if let Some(fanout) = fanout {
        let _ = tokio::time::timeout(Duration::from_secs(5), fanout).await;
    }
    // The collector stops at its next tick; a pass under way finishes first.
    let _ = tokio::time::timeout(Duration::from_secs(5), collector).await;
    tracing::info!("stopped");
    drop(lock);
    Ok(())
}
