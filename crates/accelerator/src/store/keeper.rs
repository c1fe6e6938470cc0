//! Which shards exist: storing them, freeing them, and collecting the ones no file
//! needs.
//!
//! A shard's bytes live in the [`ShardStore`]; its record (size, when it was last
//! stored) in [`Records`]; a committed file holds one reference per distinct shard
//! it lists. A shard stays while a file references it. Deleting a file frees at
//! once every shard it was the last to reference, so its manifest stops opening it
//! (that is revocation). A shard that no file references — an upload that was
//! aborted, or whose commit was refused over quota — is collected by [`crate::gc::run`] once it
//! has gone [`crate::Config::shard_grace`] without being stored again.
//!
//! # Why no committed file ever points at a collected shard
//!
//! 1. **Bytes and record move together, on every accelerator.** Storing a shard
//!    writes its bytes, then its record; freeing one drops its record, then its
//!    bytes; both happen under a hold of its address that the records give
//!    ([`super::Files::hold_shards`]). The hold is kept where the records are — in
//!    PostgreSQL an advisory lock, in SQLite (one accelerator) a lock in the
//!    process — so it reaches every accelerator sharing the records and the shard
//!    store, and the collector may run on each of them. Without it, an upload on
//!    one accelerator could land between another's dropping a shard's record and
//!    deleting its bytes: its create-only put finds the bytes still there and
//!    writes nothing, its record brings the shard back, and then the bytes go from
//!    under the file it commits. With it, whenever no one holds an address, a
//!    recorded shard has its bytes.
//! 2. **Commit and collection are serialized on the record.** Each step of a commit
//!    checks that its shards are recorded in the same transaction that inserts their
//!    references (into the file's invisible draft, which pins them until its
//!    deadline); freeing drops a record only in a statement that first checks that
//!    no reference exists (and a foreign key refuses it otherwise). The database
//!    orders the two: either the step came first, and the shard is referenced and
//!    stays; or the freeing came first, and the step finds the shard missing and the
//!    commit is refused with "upload every shard before committing" — the writer
//!    uploads it again and retries. Nothing half-written becomes visible either way:
//!    the draft becomes the file in one last step, and a refused commit's draft (or
//!    one the accelerator stopped under, once its deadline passes) is withdrawn and
//!    taken apart ([`ShardKeeper::unwind`]).
//! 3. **An upload pins its shard for its uploader only, until a deadline.** A `PUT`
//!    records the uploader's upload with a deadline one grace period away (moved on
//!    by an idempotent upload again, and by the uploader's own
//!    `POST /v1/shards/missing`, which reports present only their own uploads). The
//!    upload costs the uploader the shard's size until they commit it or the
//!    deadline passes; nobody else can keep it alive by asking about it or naming it
//!    in a commit (a commit takes only its writer's uploads and shards the same
//!    space's files already use). A shard is collected only with no upload pinning
//!    it and no file referencing it, and only once stamped longer than the grace ago.
//!    A slower writer is still safe by (2).
//!
//! Deleting a file frees its shards without waiting for the grace. A writer who at
//! that very moment commits another file listing the same shard (only identical
//! sealed bytes share an address) is refused by (2) and uploads it again.
//!
//! A crash between writing a shard's bytes and its record, or between dropping its
//! record and its bytes, leaves bytes without a record; [`crate::gc::run`] sweeps those once
//! at start, before its first collection.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use coffer_core::shard::ShardAddress;
use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::sync::Notify;

use super::shards::ShardStore;
use super::{Quota, Records, StoreError, Withdrawn};

/// Records looked at per query while collecting; bounds what one pass holds.
const BATCH: usize = 1024;

/// Addresses freed under one hold, their records dropped in one transaction. Each
/// held address is a lock in the records (in PostgreSQL one entry of its shared lock
/// table, which has room for a few thousand at the default settings), and an upload
/// of any of them waits until all their bytes are deleted: a few dozen keep both
/// small and still spare most transactions.
pub const FREE_BATCH: usize = 64;

/// Shard deletions one freeing runs side by side, so a batch's hold is not kept
/// for a round trip to the shard store per shard.
const DELETES_AT_ONCE: usize = 16;

/// One upload, as [`ShardKeeper::store`] records it.
pub struct Upload {
    /// Who uploads it (and pays for it until they commit it).
    pub user_id: String,
    /// The shard's address, already checked against its bytes.
    pub address: ShardAddress,
    /// When.
    pub now_ms: u64,
    /// Until when the upload pins the shard without a commit.
    pub expires_at_ms: u64,
    /// The uploader's allowance ([`crate::Config::user_allowance_bytes`]).
    pub allowance: u64,
}

/// The shard store and the records, kept in step. Every change to which shards
/// exist goes through here.
pub struct ShardKeeper {
    /// Shard records and the references files hold.
    pub records: Arc<dyn Records>,
    /// Shard bytes.
    pub shards: Arc<dyn ShardStore>,
    /// What is being taken apart, so a delete and the collector never take the
    /// same thing apart side by side (and a delete answers only once all of it is
    /// freed, whoever started it).
    unwinding: Claims,
}

/// Things being taken apart ([`ShardKeeper::unwind`]), one taker each.
#[derive(Default)]
struct Claims {
    /// Claimed now.
    held: Mutex<HashSet<Withdrawn>>,
    /// Wakes those waiting for a claim.
    released: Notify,
}

/// A claim on one thing; released when dropped.
struct Claim<'a> {
    /// Where it is held.
    claims: &'a Claims,
    /// What.
    what: Withdrawn,
}

impl Claims {
    /// Claims `what`, waiting while someone else holds it.
    async fn claim(&self, what: &Withdrawn) -> Claim<'_> {
        loop {
            // Made before the check, so a release between the check and the wait
            // still wakes it.
            let released = self.released.notified();
            {
                let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if held.insert(what.clone()) {
                    return Claim { claims: self, what: what.clone() };
                }
            }
            released.await;
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        held.remove(&self.what);
        self.claims.released.notify_waiters();
    }
}

fn io_failure(err: std::io::Error) -> StoreError {
    StoreError::Backend(format!("shard store: {err}"))
}

impl ShardKeeper {
    /// Keeps `shards` and `records` in step.
    pub fn new(records: Arc<dyn Records>, shards: Arc<dyn ShardStore>) -> Self {
        ShardKeeper { records, shards, unwinding: Claims::default() }
    }

    /// Stores a shard `upload` made (already checked against its address) and
    /// records the upload; storing one already there moves the deadline. Refused
    /// with `QuotaExceeded`, before a byte is written, when the uploader's allowance
    /// has no room for it. (Uploads running side by side may each pass that check:
    /// the overshoot is bounded by the per-user cap on uploads in flight.)
    pub async fn store(&self, upload: &Upload, bytes: Bytes) -> Result<(), StoreError> {
        let size = bytes.len() as u64;
        let used = self.records.used_bytes(&upload.user_id).await?;
        if used.saturating_add(size) > upload.allowance {
            return Err(StoreError::QuotaExceeded { limit: Quota::User, used, adding: size, quota: upload.allowance });
        }
        let _held = self.records.hold_shards(std::slice::from_ref(&upload.address)).await?;
        self.shards.put(&upload.address, bytes).await.map_err(io_failure)?;
        self.records.record_upload(&upload.user_id, &upload.address, size, upload.now_ms, upload.expires_at_ms).await?;
        Ok(())
    }

    /// For each address, in order, whether `user_id` has uploaded it and not yet
    /// committed it; moves those uploads' deadlines to `expires_at_ms` (see the
    /// module docs, point 3). An upload whose bytes are gone (removed from the disk
    /// by hand) counts as missing, so the writer uploads it again and heals the store.
    pub async fn present(
        &self,
        user_id: &str,
        addresses: &[ShardAddress],
        expires_at_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let recorded = self.records.touch_uploads(user_id, addresses, expires_at_ms).await?;
        let mut present = Vec::with_capacity(addresses.len());
        for (address, recorded) in addresses.iter().zip(recorded) {
            present.push(recorded && self.shards.has(address).await.map_err(io_failure)?);
        }
        Ok(present)
    }

    /// Frees each of `addresses` that, when its turn comes, no file references, no
    /// upload pins and that was stamped before `stored_before_ms` (`u64::MAX`: at
    /// once, whatever its age). Returns how many it freed.
    ///
    /// The addresses are freed [`FREE_BATCH`] at a time: the batch is held, the
    /// records of those that may go are dropped in one transaction, their bytes
    /// deleted, and the hold let go.
    pub async fn free(&self, addresses: &[ShardAddress], stored_before_ms: u64) -> Result<usize, StoreError> {
        let mut sorted = addresses.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut freed = 0;
        for batch in sorted.chunks(FREE_BATCH) {
            let _held = self.records.hold_shards(batch).await?;
            let forgotten = self.records.forget_shards(batch, stored_before_ms).await?;
            freed += forgotten.len();
            futures_util::stream::iter(forgotten)
                .map(|address| {
                    let shards = Arc::clone(&self.shards);
                    async move { shards.delete(&address).await }
                })
                .buffer_unordered(DELETES_AT_ONCE)
                .try_for_each(|_deleted| async { Ok(()) })
                .await
                .map_err(io_failure)?;
        }
        Ok(freed)
    }

    /// Takes a withdrawn file or space apart ([`super::Files::unwind`]) a step at a
    /// time, freeing at once each shard no file references any more. Returns how
    /// many it freed. If something else (the collector, another delete) is taking the
    /// same thing apart, waits for it to finish first, so that on return all of it
    /// is freed.
    pub async fn unwind(&self, what: &Withdrawn) -> Result<usize, StoreError> {
        let _claim = self.unwinding.claim(what).await;
        let mut freed = 0;
        loop {
            let step = self.records.unwind(what, self.records.step()).await?;
            freed += self.free(&step.freed, u64::MAX).await?;
            if step.done {
                return Ok(freed);
            }
        }
    }

    /// One collection: drops the uploads past their deadline at `now_ms`, then
    /// frees every shard no file references and no upload pins that was stamped
    /// before `stored_before_ms`. Returns how many shards it freed.
    pub async fn collect(&self, now_ms: u64, stored_before_ms: u64) -> Result<usize, StoreError> {
        while self.records.expire_uploads(now_ms, BATCH).await? == BATCH {}
        let mut freed = 0;
        // Deletes and commits that stopped half-way (the accelerator stopped under
        // them), and drafts past their deadline.
        loop {
            let withdrawn = self.records.withdrawn(now_ms, BATCH).await?;
            for what in &withdrawn {
                freed += self.unwind(what).await?;
            }
            if withdrawn.len() < BATCH {
                break;
            }
        }
        loop {
            let candidates = self.records.collectable_shards(stored_before_ms, BATCH).await?;
            freed += self.free(&candidates, stored_before_ms).await?;
            // A candidate not freed was stamped or referenced meanwhile, so it is not
            // a candidate the next time round: every round makes progress.
            if candidates.len() < BATCH {
                return Ok(freed);
            }
        }
    }

    /// Deletes the stored shards under `prefix` that have no record (left by a
    /// crash, see the module docs). Returns how many it deleted.
    pub async fn sweep_unrecorded(&self, prefix: &str) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for address in self.shards.list(prefix).await.map_err(io_failure)? {
            let _held = self.records.hold_shards(std::slice::from_ref(&address)).await?;
            if !self.records.shard_recorded(&address).await? {
                self.shards.delete(&address).await.map_err(io_failure)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
