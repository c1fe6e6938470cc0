//! Which shards exist: storing them, freeing them, and collecting the ones no file
//! needs.
//!
//! A shard's bytes live in the [`ShardStore`]; its record (size, when it was last
//! stored) in [`Records`]; a committed file holds one reference per distinct shard
//! it lists. A shard stays while a file references it. Deleting a file frees at
//! once every shard it was the last to reference, so its manifest stops opening it
//! (that is revocation). A shard that no file references — an upload that was
//! aborted, or whose commit was refused over quota — is collected by [`run`] once it
//! has gone [`crate::Config::shard_grace`] without being stored again.
//!
//! # Why no committed file ever points at a collected shard
//!
//! 1. **Bytes and record move together.** Storing a shard writes its bytes, then its
//!    record; freeing one drops its record, then its bytes; both happen under the
//!    lock of its address ([`ShardLocks`]). So whenever that lock is free, a
//!    recorded shard has its bytes.
//! 2. **Commit and collection are serialized on the record.** A commit checks that
//!    every listed shard is recorded in the same transaction that inserts its
//!    references; freeing drops a record only in a statement that first checks that
//!    no reference exists (and a foreign key refuses it otherwise). The database
//!    orders the two: either the commit came first, and the shard is referenced and
//!    stays; or the freeing came first, and the commit finds the shard missing and
//!    is refused with "upload every shard before committing" — the writer uploads
//!    it again and retries. Nothing half-written becomes visible either way.
//! 3. **The grace covers the gap between upload and commit.** Only shards stamped
//!    longer than the grace ago are collected. A `PUT` re-stamps the shard even
//!    when it was already stored (an idempotent upload), and `POST /v1/shards/missing`
//!    re-stamps every shard it reports present, so a writer has a whole grace period
//!    from either to its commit. A slower writer is still safe by (2).
//!
//! Deleting a file frees its shards without waiting for the grace. A writer who at
//! that very moment commits another file listing the same shard (only identical
//! sealed bytes share an address) is refused by (2) and uploads it again.
//!
//! A crash between writing a shard's bytes and its record, or between dropping its
//! record and its bytes, leaves bytes without a record; [`run`] sweeps those once
//! at start, before its first collection.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use coffer_core::shard::ShardAddress;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::error::ApiError;
use crate::server::now_ms;
use crate::store::Records;
use crate::store::shards::ShardStore;

/// Records looked at per query while collecting; bounds what one pass holds.
const BATCH: usize = 1024;

/// One lock per fan-out folder (the first byte of an address): storing and freeing
/// a shard hold its address's lock, so they never interleave for one address.
pub struct ShardLocks(
    /// Indexed by the address's first byte.
    [Mutex<()>; 256],
);

impl Default for ShardLocks {
    fn default() -> Self {
        ShardLocks(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl ShardLocks {
    /// Holds the lock of `address` until the guard drops.
    pub fn hold(&self, address: &ShardAddress) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic while holding it leaves nothing broken.
        self.0[usize::from(address.as_bytes()[0])].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The shard store and the records, kept in step. Every change to which shards
/// exist goes through here. Its methods block: call them on the blocking pool.
pub struct ShardKeeper {
    /// Shard records and the references files hold.
    pub records: Arc<dyn Records>,
    /// Shard bytes.
    pub shards: Arc<dyn ShardStore>,
    /// Serialize storing and freeing per address.
    locks: ShardLocks,
}

fn io_failure(err: std::io::Error) -> ApiError {
    ApiError::internal(format!("shard store: {err}"))
}

impl ShardKeeper {
    /// Keeps `shards` and `records` in step.
    pub fn new(records: Arc<dyn Records>, shards: Arc<dyn ShardStore>) -> Self {
        ShardKeeper { records, shards, locks: ShardLocks::default() }
    }

    /// Stores a shard (already checked against its address) and stamps its record
    /// with `now_ms`; storing one already there rewrites it and re-stamps it.
    pub fn store(&self, address: &ShardAddress, bytes: &[u8], now_ms: u64) -> Result<(), ApiError> {
        let _held = self.locks.hold(address);
        self.shards.put(address, bytes).map_err(io_failure)?;
        self.records.stamp_shard(address, bytes.len() as u64, now_ms)?;
        Ok(())
    }

    /// For each address, in order, whether the shard is stored; re-stamps the
    /// recorded ones (see the module docs, point 3). A record whose bytes are gone
    /// (removed from the disk by hand) counts as missing, so the writer uploads it
    /// again and heals the store.
    pub fn present(&self, addresses: &[ShardAddress], now_ms: u64) -> Result<Vec<bool>, ApiError> {
        let recorded = self.records.touch_shards(addresses, now_ms)?;
        addresses
            .iter()
            .zip(recorded)
            .map(|(address, recorded)| Ok(recorded && self.shards.has(address).map_err(io_failure)?))
            .collect()
    }

    /// Frees each of `addresses` that, when its turn comes, no committed file
    /// references and that was stamped before `stored_before_ms` (`u64::MAX`: at
    /// once, whatever its age). Returns how many it freed.
    pub fn free(&self, addresses: &[ShardAddress], stored_before_ms: u64) -> Result<usize, ApiError> {
        let mut freed = 0;
        for address in addresses {
            let _held = self.locks.hold(address);
            if self.records.forget_shard(address, stored_before_ms)? {
                self.shards.delete(address).map_err(io_failure)?;
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// One collection: frees every unreferenced shard stamped before
    /// `stored_before_ms`. Returns how many it freed.
    pub fn collect(&self, stored_before_ms: u64) -> Result<usize, ApiError> {
        let mut freed = 0;
        loop {
            let candidates = self.records.collectable_shards(stored_before_ms, BATCH)?;
            freed += self.free(&candidates, stored_before_ms)?;
            // A candidate not freed was stamped or referenced meanwhile, so it is not
            // a candidate the next time round: every round makes progress.
            if candidates.len() < BATCH {
                return Ok(freed);
            }
        }
    }

    /// Deletes the stored shards under `prefix` that have no record (left by a
    /// crash, see the module docs). Returns how many it deleted.
    pub fn sweep_unrecorded(&self, prefix: &str) -> Result<usize, ApiError> {
        let mut deleted = 0;
        for address in self.shards.list(prefix).map_err(io_failure)? {
            let _held = self.locks.hold(&address);
            if !self.records.shard_recorded(&address)? {
                self.shards.delete(&address).map_err(io_failure)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// The collector: sweeps shards without a record once, then every `interval`
/// collects unreferenced shards older than `grace`, until `shutdown` turns true.
pub async fn run(keeper: Arc<ShardKeeper>, grace: Duration, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut swept = 0;
    for byte in 0..=255u8 {
        if *shutdown.borrow() {
            return;
        }
        let k = Arc::clone(&keeper);
        match tokio::task::spawn_blocking(move || k.sweep_unrecorded(&format!("{byte:02x}"))).await {
            Ok(Ok(n)) => swept += n,
            Ok(Err(_)) => {} // logged by ApiError::internal
            Err(e) => tracing::error!(%e, "shard sweep task failed"),
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
        let k = Arc::clone(&keeper);
        let stored_before_ms = now_ms().saturating_sub(grace_ms);
        match tokio::task::spawn_blocking(move || k.collect(stored_before_ms)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(freed)) => tracing::info!(freed, "collected unreferenced shards"),
            Err(e) => tracing::error!(%e, "shard collection task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shard_dir::ShardDir;
    use crate::store::sqlite::SqliteRecords;
    use crate::store::{Credentials, NewFile, StoreError, User};

    fn keeper() -> (tempfile::TempDir, ShardKeeper) {
        let dir = tempfile::tempdir().unwrap();
        let records = Arc::new(SqliteRecords::open(dir.path(), 10).unwrap());
        let shards = Arc::new(ShardDir::open(dir.path()).unwrap());
        let user = User {
            user_id: "u".into(),
            username: "ada".into(),
            credentials: Credentials {
                salt: [0; 16],
                kdf: Default::default(),
                login_public_key: [0; 32],
                wrapped_root: vec![0; 61],
            },
            kv_seq: 0,
        };
        records.create_user(&user).unwrap();
        records.create_space("s", b"n", "u", 0).unwrap();
        (dir, ShardKeeper::new(records, shards))
    }

    fn file(id: &str, shards: &[ShardAddress]) -> NewFile {
        NewFile {
            space_id: "s".into(),
            file_id: id.into(),
            sealed_record: vec![1],
            shards: shards.to_vec(),
            created_by: "u".into(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn collection_takes_only_old_unreferenced_shards() {
        let (_dir, k) = keeper();
        let (a, b, c) = (ShardAddress::of(b"a"), ShardAddress::of(b"b"), ShardAddress::of(b"c"));
        k.store(&a, b"a", 100).unwrap();
        k.store(&b, b"b", 100).unwrap();
        k.store(&c, b"c", 100).unwrap();
        k.records.commit_file(&file("f", &[a]), u64::MAX).unwrap();
        // An idempotent upload of `b` re-stamps it: it gets a new grace period.
        k.store(&b, b"b", 500).unwrap();
        assert_eq!(k.collect(200).unwrap(), 1);
        assert!(k.shards.has(&a).unwrap(), "referenced");
        assert!(k.shards.has(&b).unwrap(), "re-stamped");
        assert!(!k.shards.has(&c).unwrap() && !k.records.shard_recorded(&c).unwrap(), "collected, bytes and record");
        // `missing` re-stamps what it reports present, likewise.
        assert_eq!(k.present(&[b, c], 900).unwrap(), [true, false]);
        assert_eq!(k.collect(600).unwrap(), 0);
        assert_eq!(k.collect(901).unwrap(), 1);
        // A commit after its shard was collected is refused, never dangling.
        assert_eq!(
            k.records.commit_file(&file("g", &[b]), u64::MAX),
            Err(StoreError::MissingShards { missing: 1, listed: 1 })
        );
    }

    #[test]
    fn freeing_skips_shards_referenced_meanwhile() {
        let (_dir, k) = keeper();
        let a = ShardAddress::of(b"a");
        k.store(&a, b"a", 0).unwrap();
        k.records.commit_file(&file("f", &[a]), u64::MAX).unwrap();
        k.records.commit_file(&file("g", &[a]), u64::MAX).unwrap();
        let freed = k.records.delete_file("s", "f", "u").unwrap().unwrap();
        assert!(freed.is_empty(), "still referenced by g");
        // Even handed a stale candidate list, `free` re-checks under the lock.
        assert_eq!(k.free(&[a], u64::MAX).unwrap(), 0);
        assert!(k.shards.has(&a).unwrap());
        let freed = k.records.delete_file("s", "g", "u").unwrap().unwrap();
        assert_eq!(k.free(&freed, u64::MAX).unwrap(), 1);
        assert!(!k.shards.has(&a).unwrap());
    }

    #[test]
    fn the_sweep_removes_only_unrecorded_bytes() {
        let (_dir, k) = keeper();
        let (kept, stray) = (ShardAddress::of(b"kept"), ShardAddress::of(b"stray"));
        k.store(&kept, b"kept", 0).unwrap();
        k.shards.put(&stray, b"stray").unwrap();
        let swept: usize = (0..=255u8).map(|b| k.sweep_unrecorded(&format!("{b:02x}")).unwrap()).sum();
        assert_eq!(swept, 1);
        assert!(k.shards.has(&kept).unwrap() && !k.shards.has(&stray).unwrap());
    }
}
