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
//! 1. **Bytes and record move together.** Storing a shard writes its bytes, then its
//!    record; freeing one drops its record, then its bytes; both happen under the
//!    lock of its address ([`ShardLocks`]). So whenever that lock is free, a
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

use std::sync::{Arc, Mutex, MutexGuard};

use coffer_core::shard::ShardAddress;

use super::shards::ShardStore;
use super::{Quota, Records, StoreError, Withdrawn};

/// Records looked at per query while collecting; bounds what one pass holds.
const BATCH: usize = 1024;

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
    /// What is being taken apart, so a delete and the collector never take the
    /// same thing apart side by side (and a delete answers only once all of it is
    /// freed, whoever started it).
    unwinding: Claims,
}

/// Things being taken apart ([`ShardKeeper::unwind`]), one taker each.
#[derive(Default)]
struct Claims {
    /// Claimed now.
    held: Mutex<std::collections::HashSet<Withdrawn>>,
    /// Wakes those waiting for a claim.
    released: std::sync::Condvar,
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
    fn claim(&self, what: &Withdrawn) -> Claim<'_> {
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while held.contains(what) {
            held = self.released.wait(held).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        held.insert(what.clone());
        Claim { claims: self, what: what.clone() }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        held.remove(&self.what);
        self.claims.released.notify_all();
    }
}

fn io_failure(err: std::io::Error) -> StoreError {
    StoreError::Backend(format!("shard store: {err}"))
}

impl ShardKeeper {
    /// Keeps `shards` and `records` in step.
    pub fn new(records: Arc<dyn Records>, shards: Arc<dyn ShardStore>) -> Self {
        ShardKeeper { records, shards, locks: ShardLocks::default(), unwinding: Claims::default() }
    }

    /// Stores a shard `upload` made (already checked against its address) and
    /// records the upload; storing one already there rewrites it and moves the
    /// deadline. Refused with `QuotaExceeded`, before a byte is written, when the
    /// uploader's allowance has no room for it. (Uploads running side by side may
    /// each pass that check: the overshoot is bounded by the per-user cap on uploads
    /// in flight.)
    pub fn store(&self, upload: &Upload, bytes: &[u8]) -> Result<(), StoreError> {
        let size = bytes.len() as u64;
        let used = self.records.used_bytes(&upload.user_id)?;
        if used.saturating_add(size) > upload.allowance {
            return Err(StoreError::QuotaExceeded { limit: Quota::User, used, adding: size, quota: upload.allowance });
        }
        let _held = self.locks.hold(&upload.address);
        self.shards.put(&upload.address, bytes).map_err(io_failure)?;
        self.records.record_upload(&upload.user_id, &upload.address, size, upload.now_ms, upload.expires_at_ms)?;
        Ok(())
    }

    /// For each address, in order, whether `user_id` has uploaded it and not yet
    /// committed it; moves those uploads' deadlines to `expires_at_ms` (see the
    /// module docs, point 3). An upload whose bytes are gone (removed from the disk
    /// by hand) counts as missing, so the writer uploads it again and heals the store.
    pub fn present(
        &self,
        user_id: &str,
        addresses: &[ShardAddress],
        expires_at_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let recorded = self.records.touch_uploads(user_id, addresses, expires_at_ms)?;
        addresses
            .iter()
            .zip(recorded)
            .map(|(address, recorded)| Ok(recorded && self.shards.has(address).map_err(io_failure)?))
            .collect()
    }

    /// Frees each of `addresses` that, when its turn comes, no file references, no
    /// upload pins and that was stamped before `stored_before_ms` (`u64::MAX`: at
    /// once, whatever its age). Returns how many it freed.
    ///
    /// The records of each group of addresses that share a lock are dropped in one
    /// transaction, under that lock, and then their bytes.
    pub fn free(&self, addresses: &[ShardAddress], stored_before_ms: u64) -> Result<usize, StoreError> {
        let mut sorted = addresses.to_vec();
        sorted.sort_unstable();
        let mut freed = 0;
        for group in sorted.chunk_by(|a, b| a.as_bytes()[0] == b.as_bytes()[0]) {
            let _held = self.locks.hold(&group[0]);
            for address in self.records.forget_shards(group, stored_before_ms)? {
                self.shards.delete(&address).map_err(io_failure)?;
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Takes a withdrawn file or space apart ([`Records::unwind`]) a step at a time,
    /// freeing at once each shard no file references any more. Returns how many it
    /// freed. If something else (the collector, another delete) is taking the same
    /// thing apart, waits for it to finish first, so that on return all of it is
    /// freed.
    pub fn unwind(&self, what: &Withdrawn) -> Result<usize, StoreError> {
        let _claim = self.unwinding.claim(what);
        let mut freed = 0;
        loop {
            let step = self.records.unwind(what, self.records.step())?;
            freed += self.free(&step.freed, u64::MAX)?;
            if step.done {
                return Ok(freed);
            }
        }
    }

    /// One collection: drops the uploads past their deadline at `now_ms`, then
    /// frees every shard no file references and no upload pins that was stamped
    /// before `stored_before_ms`. Returns how many shards it freed.
    pub fn collect(&self, now_ms: u64, stored_before_ms: u64) -> Result<usize, StoreError> {
        while self.records.expire_uploads(now_ms, BATCH)? == BATCH {}
        let mut freed = 0;
        // Deletes and commits that stopped half-way (the accelerator stopped under
        // them), and drafts past their deadline.
        loop {
            let withdrawn = self.records.withdrawn(now_ms, BATCH)?;
            for what in &withdrawn {
                freed += self.unwind(what)?;
            }
            if withdrawn.len() < BATCH {
                break;
            }
        }
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
    pub fn sweep_unrecorded(&self, prefix: &str) -> Result<usize, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shard_dir::ShardDir;
    use crate::store::sqlite::SqliteRecords;
    use crate::store::{Credentials, Invite, NewFile, Quotas, User};

    fn user(id: &str) -> User {
        User {
            user_id: id.into(),
            username: id.into(),
            credentials: Credentials {
                salt: [0; 16],
                kdf: Default::default(),
                login_public_key: [0; 32],
                wrapped_root: vec![0; 61],
            },
            kv_seq: 0,
        }
    }

    fn keeper() -> (tempfile::TempDir, ShardKeeper) {
        let dir = tempfile::tempdir().unwrap();
        let records = Arc::new(SqliteRecords::open(dir.path(), 10).unwrap());
        let shards = Arc::new(ShardDir::open(dir.path()).unwrap());
        records.create_user(&user("u")).unwrap();
        records.create_user(&user("v")).unwrap();
        records.create_space("s", b"n", "u", 0, u64::MAX).unwrap();
        (dir, ShardKeeper::new(records, shards))
    }

    /// `user_id` uploads `bytes` at `now_ms`, pinned for 100 ms.
    fn upload(k: &ShardKeeper, user_id: &str, bytes: &[u8], now_ms: u64) -> ShardAddress {
        let address = ShardAddress::of(bytes);
        let upload =
            Upload { user_id: user_id.into(), address, now_ms, expires_at_ms: now_ms + 100, allowance: u64::MAX };
        k.store(&upload, bytes).unwrap();
        address
    }

    fn file(id: &str, by: &str, shards: &[ShardAddress]) -> NewFile {
        NewFile {
            space_id: "s".into(),
            file_id: id.into(),
            sealed_record: vec![1],
            shards: shards.into(),
            max_shard_bytes: u64::MAX,
            created_by: by.into(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn collection_takes_only_unpinned_unreferenced_shards() {
        let (_dir, k) = keeper();
        let a = upload(&k, "u", b"a", 100);
        let b = upload(&k, "u", b"b", 100);
        let c = upload(&k, "u", b"c", 100);
        k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).unwrap();
        // Uploading `b` again moves its deadline.
        upload(&k, "u", b"b", 500);
        assert_eq!(k.collect(200, 200).unwrap(), 1);
        assert!(k.shards.has(&a).unwrap(), "referenced");
        assert!(k.shards.has(&b).unwrap(), "pinned again");
        assert!(!k.shards.has(&c).unwrap() && !k.records.shard_recorded(&c).unwrap(), "collected, bytes and record");
        // Only the uploader's `missing` sees and moves the upload.
        assert_eq!(k.present("v", &[b], 10_000).unwrap(), [false]);
        assert_eq!(k.present("u", &[b, c], 1000).unwrap(), [true, false]);
        assert_eq!(k.collect(600, 600).unwrap(), 0);
        assert_eq!(k.collect(1000, 1000).unwrap(), 1);
        // A commit after its shard was collected is refused, never dangling.
        assert_eq!(
            k.records.commit_file(&file("g", "u", &[b]), Quotas::NONE, u64::MAX),
            Err(StoreError::MissingShards { missing: 1, listed: 1 })
        );
    }

    #[test]
    fn a_commit_takes_only_its_writers_uploads_or_its_spaces_shards() {
        let (_dir, k) = keeper();
        let invite = Invite {
            space_id: "s".into(),
            secret_hash: [1; 32],
            role: coffer_core::proto::storage::Role::Writer,
            expires_at_ms: u64::MAX,
            max_uses: 1,
        };
        k.records.create_invite("u", &invite, 0).unwrap();
        k.records.join_space("s", &[1; 32], "v", 0).unwrap();
        let a = upload(&k, "u", b"a", 0);
        let b = upload(&k, "v", b"b", 0);
        // `v` cannot pin `u`'s upload by naming it.
        assert_eq!(
            k.records.commit_file(&file("f", "v", &[a, b]), Quotas::NONE, u64::MAX),
            Err(StoreError::MissingShards { missing: 1, listed: 2 })
        );
        k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).unwrap();
        // Once a file of the space uses it, any writer there may list it too.
        k.records.commit_file(&file("g", "v", &[a, b]), Quotas::NONE, u64::MAX).unwrap();
    }

    #[test]
    fn uploads_are_charged_until_committed_or_expired() {
        let (_dir, k) = keeper();
        let base = k.records.used_bytes("u").unwrap();
        let a = upload(&k, "u", &[7; 1000], 0);
        assert_eq!(k.records.used_bytes("u").unwrap(), base + 1000);
        upload(&k, "u", &[7; 1000], 50);
        assert_eq!(k.records.used_bytes("u").unwrap(), base + 1000, "an upload again is not charged twice");
        let over = Upload {
            user_id: "u".into(),
            address: ShardAddress::of(&[8; 10]),
            now_ms: 0,
            expires_at_ms: 1,
            allowance: base + 1005,
        };
        let err = k.store(&over, &[8; 10]).unwrap_err();
        assert!(matches!(err, StoreError::QuotaExceeded { limit: Quota::User, .. }), "{err:?}");
        assert!(!k.shards.has(&over.address).unwrap(), "refused before a byte is written");
        let committed = k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).unwrap();
        let charged = crate::store::file_cost(1000, 1, 1);
        assert_eq!(committed.stored_bytes, 1000);
        assert_eq!(k.records.used_bytes("u").unwrap(), base + charged, "the upload became the file");
        upload(&k, "u", b"z", 0);
        k.collect(1000, 0).unwrap();
        assert_eq!(k.records.used_bytes("u").unwrap(), base + charged, "an expired upload is refunded");
        k.records.delete_file("s", "f", "u").unwrap();
        assert_eq!(k.records.used_bytes("u").unwrap(), base, "a deleted file is refunded");
    }

    #[test]
    fn freeing_skips_shards_referenced_meanwhile() {
        let (_dir, k) = keeper();
        let a = upload(&k, "u", b"a", 0);
        k.records.commit_file(&file("f", "u", &[a]), Quotas::NONE, u64::MAX).unwrap();
        k.records.commit_file(&file("g", "u", &[a]), Quotas::NONE, u64::MAX).unwrap();
        let withdrawn = |id: &str| Withdrawn::File { space_id: "s".into(), file_id: id.into() };
        assert!(k.records.delete_file("s", "f", "u").unwrap());
        assert_eq!(k.unwind(&withdrawn("f")).unwrap(), 0, "still referenced by g");
        // Even handed a stale candidate list, `free` re-checks under the lock.
        assert_eq!(k.free(&[a], u64::MAX).unwrap(), 0);
        assert!(k.shards.has(&a).unwrap());
        assert!(k.records.delete_file("s", "g", "u").unwrap());
        assert_eq!(k.unwind(&withdrawn("g")).unwrap(), 1);
        assert!(!k.shards.has(&a).unwrap());
    }

    #[test]
    fn the_collector_takes_apart_commits_that_never_finished() {
        let (_dir, k) = keeper();
        let base = k.records.used_bytes("u").unwrap();
        let (a, b) = (upload(&k, "u", b"a", 0), upload(&k, "u", b"b", 0));
        // The first step of a commit, then the accelerator stopped.
        k.records.draft_file(&file("f", "u", &[a, b]), 0..1, 100).unwrap();
        assert_eq!(k.collect(50, 0).unwrap(), 0, "before its deadline the draft pins its shard");
        assert!(k.shards.has(&a).unwrap());
        assert_eq!(k.records.used_bytes("u").unwrap(), base + 2, "one upload, one settled into the draft");
        assert_eq!(k.collect(100, 0).unwrap(), 1, "at its deadline the draft goes, and its shard");
        assert!(!k.shards.has(&a).unwrap() && k.shards.has(&b).unwrap());
        assert_eq!(k.records.used_bytes("u").unwrap(), base, "the draft and the expired upload are refunded");
        // Nothing of it is left: its id is free again.
        k.records.draft_file(&file("f", "u", &[]), 0..0, 200).unwrap();
    }

    #[test]
    fn the_sweep_removes_only_unrecorded_bytes() {
        let (_dir, k) = keeper();
        let (kept, stray) = (upload(&k, "u", b"kept", 0), ShardAddress::of(b"stray"));
        k.shards.put(&stray, b"stray").unwrap();
        let swept: usize = (0..=255u8).map(|b| k.sweep_unrecorded(&format!("{b:02x}")).unwrap()).sum();
        assert_eq!(swept, 1);
        assert!(k.shards.has(&kept).unwrap() && !k.shards.has(&stray).unwrap());
    }
}
