//! Shards, uploads and files: commits in steps, deletes, and taking withdrawn files
//! and spaces apart.
//!
//! Besides the space and user locks ([`lock_space`], [`lock_user`]), two kinds of
//! row lock keep several accelerators from undoing each other's work here:
//!
//! - a file's row (`FOR UPDATE`) while a step of its commit, its seal, its
//!   withdrawal or a step of its unwinding runs: each sees what the previous one
//!   committed;
//! - shard rows: a commit step holds `FOR KEY SHARE` on the shards it references
//!   (the foreign key would take it too), the collector takes `FOR UPDATE` before it
//!   checks that nothing references a shard and drops it, and unwinders take
//!   `FOR NO KEY UPDATE` before they check which shards nothing references any more.
//!   So a shard is never dropped under a new reference, and of two unwinders
//!   dropping the last two references to one shard, the later one frees it.
//!
//! Locks are taken in one order — space, file, user, shards, uploads — except where
//! noted; PostgreSQL aborts the rare circle anyway, and the transaction is retried.
//!
//! Shard holds ([`Files::hold_shards`]) are session advisory locks, one per address,
//! on connections of their own ([`PgHold`]).

use std::ops::Range;

use coffer_core::proto::storage::Role;
use coffer_core::shard::ShardAddress;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::accounts::{charge, lock_user, refund_all};
use super::space_keys::require_epoch;
use super::spaces::{Hold, lock_space, require, space_used_bytes};
use super::{
    Failure, PgRecords, bytes32, cursor_at, epoch_at, exec, int, one, page_rows, paged, position, retry, row, rows,
    snapshot, uint,
};
use crate::store::{
    FileRecord, Files, NewFile, Page, PageRequest, Quota, Quotas, ShardHold, StoreError, Unwound, Withdrawn,
    async_trait, file_cost,
};

/// A shard hold: session advisory locks, one per address, on a connection from
/// [`PgRecords`]' pool for holds, which every accelerator on the database sees.
///
/// A lock is keyed by the first eight bytes of its address (the address is a hash,
/// so two addresses share a key about never, and if they do, one waits for the
/// other a moment longer). Keys are taken in ascending order, so holds of
/// overlapping sets never wait in a circle.
///
/// Dropping it gives the locks back — `pg_advisory_unlock_all()` in a task of its
/// own, as drop cannot wait — and then the connection to its pool; a connection that
/// fails at it is closed instead, and PostgreSQL releases a closed session's locks.
/// A wait given up half-way (its future dropped) ends the same way: the unlock runs
/// after the lock statement still under way on the connection. If the connection
/// breaks while held, its locks go with it and the holder does not know: that takes
/// the database or the network failing under a write, as a crash would.
pub struct PgHold(
    /// The connection whose session holds the locks; `None` once given back.
    Option<deadpool_postgres::Object>,
);

/// The advisory lock key of `address`.
fn hold_key(address: &ShardAddress) -> i64 {
    let mut first = [0; 8];
    first.copy_from_slice(&address.as_bytes()[..8]);
    i64::from_be_bytes(first)
}

impl Drop for PgHold {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else { return };
        let give_back = async move {
            if client.batch_execute("SELECT pg_advisory_unlock_all()").await.is_err() {
                // Out of the pool: dropping it closes the session, and its locks go.
                drop(deadpool_postgres::Object::take(client));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(give_back)),
            // No runtime left to run the connection either: it is closing already.
            Err(_) => drop(give_back),
        }
    }
}

const FILE_COLUMNS: &str = "space_id, file_id, sealed_record, stored_bytes, created_by, created_at_ms, epoch";

fn file_from_row(row: &Row) -> Result<FileRecord, Failure> {
    Ok(FileRecord {
        space_id: row.try_get(0)?,
        file_id: row.try_get(1)?,
        sealed_record: row.try_get(2)?,
        stored_bytes: uint(row.try_get(3)?),
        created_by: row.try_get(4)?,
        created_at_ms: uint(row.try_get(5)?),
        epoch: epoch_at(row, 6)?,
    })
}

/// Addresses as a `bytea[]` parameter.
fn address_array(addresses: &[ShardAddress]) -> Vec<&[u8]> {
    addresses.iter().map(|a| a.as_bytes().as_slice()).collect()
}

/// Addresses read from column 0 of each row.
fn addresses_of(found: &[Row]) -> Result<Vec<ShardAddress>, Failure> {
    found.iter().map(|r| bytes32(r, 0).map(ShardAddress::from_bytes)).collect()
}

/// What [`list_shards`] found.
struct Listed {
    /// Bytes the listed shards hold.
    stored_bytes: u64,
    /// Bytes of the writer's own pending uploads among them.
    settled_bytes: u64,
}

/// Checks with one set query that each of `shards` (distinct) is stored and is
/// either `file`'s creator's own pending upload or already used by a live file of
/// the same space. A shard someone else uploaded counts as missing to this writer:
/// they upload it too (and pay for it), so no one pins another's shards by naming
/// them. With `lock`, the shards found are first locked against the collector
/// (`FOR KEY SHARE`) and the creator's uploads of them against expiry (`FOR UPDATE`)
/// until the caller commits.
async fn list_shards(
    tx: &impl GenericClient,
    file: &NewFile,
    shards: &[ShardAddress],
    lock: bool,
) -> Result<Listed, Failure> {
    let listed = address_array(shards);
    if lock {
        exec(tx, "SELECT 1 FROM shards WHERE address = ANY($1) ORDER BY address FOR KEY SHARE", &[&listed]).await?;
        exec(
            tx,
            "SELECT 1 FROM uploads WHERE user_id = $1 AND address = ANY($2) ORDER BY address FOR UPDATE",
            &[&file.created_by, &listed],
        )
        .await?;
    }
    let found = one(
        tx,
        "WITH listed AS (SELECT DISTINCT address FROM unnest($3::bytea[]) AS l(address))
         SELECT count(*), count(s.address), coalesce(sum(s.size), 0)::bigint,
                count(*) FILTER (WHERE s.address IS NOT NULL AND u.address IS NULL
                    AND NOT EXISTS (SELECT 1 FROM file_shards f JOIN files x
                                    ON x.space_id = f.space_id AND x.file_id = f.file_id
                                    WHERE f.address = l.address AND f.space_id = $2 AND x.state = 'live')),
                coalesce(sum(u.size), 0)::bigint
         FROM listed l LEFT JOIN shards s ON s.address = l.address
         LEFT JOIN uploads u ON u.user_id = $1 AND u.address = l.address",
        &[&file.created_by, &file.space_id, &listed],
    )
    .await?;
    let (distinct, stored, not_theirs): (i64, i64, i64) = (found.try_get(0)?, found.try_get(1)?, found.try_get(3)?);
    let missing = (uint(distinct - stored) + uint(not_theirs)) as usize;
    if missing > 0 {
        return Err(StoreError::MissingShards { missing, listed: file.shards.len() }.into());
    }
    Ok(Listed { stored_bytes: uint(found.try_get(2)?), settled_bytes: uint(found.try_get(4)?) })
}

/// Refuses a file whose id is used in its space.
async fn file_id_free(c: &impl GenericClient, file: &NewFile) -> Result<(), Failure> {
    let taken =
        row(c, "SELECT 1 FROM files WHERE space_id = $1 AND file_id = $2", &[&file.space_id, &file.file_id]).await?;
    match taken {
        Some(_) => Err(StoreError::FileTaken.into()),
        None => Ok(()),
    }
}

/// Refuses a file whose shards hold `stored_bytes` if the space, or its creator
/// (who has `settled_bytes` of them as pending uploads already charged), would go
/// past `quotas`. Exact only under the space's and the creator's locks.
async fn fits(
    c: &impl GenericClient,
    file: &NewFile,
    stored_bytes: u64,
    settled_bytes: u64,
    quotas: Quotas,
) -> Result<(), Failure> {
    if stored_bytes > file.max_shard_bytes {
        return Err(StoreError::OverDeclared { stored: stored_bytes, bound: file.max_shard_bytes }.into());
    }
    let used = space_used_bytes(c, &file.space_id).await?;
    if used.saturating_add(stored_bytes) > quotas.space_bytes {
        return Err(StoreError::QuotaExceeded {
            limit: Quota::Space,
            used,
            adding: stored_bytes,
            quota: quotas.space_bytes,
        }
        .into());
    }
    let cost = file_cost(stored_bytes, file.shards.len(), file.sealed_record.len());
    let used: i64 = one(c, "SELECT used_bytes FROM users WHERE user_id = $1", &[&file.created_by]).await?.try_get(0)?;
    let adding = cost.saturating_sub(settled_bytes);
    if uint(used).saturating_add(adding) > quotas.user_bytes {
        return Err(StoreError::QuotaExceeded {
            limit: Quota::User,
            used: uint(used),
            adding,
            quota: quotas.user_bytes,
        }
        .into());
    }
    Ok(())
}

/// One step of a commit ([`PgRecords::draft_file`]) in the caller's transaction,
/// which holds the space's row.
async fn draft_step(
    tx: &impl GenericClient,
    file: &NewFile,
    range: Range<usize>,
    expires_at_ms: u64,
) -> Result<(), Failure> {
    let slice = file.shards.get(range.clone()).ok_or(StoreError::Backend("a step past the list".into()))?;
    require(tx, &file.space_id, &file.created_by, Role::Writer).await?;
    require_epoch(tx, &file.space_id, file.epoch).await?;
    if range.start == 0 {
        // Of two commits of one id, the second waits here for the first and then
        // finds the id taken.
        let opened = exec(
            tx,
            &format!(
                "INSERT INTO files ({FILE_COLUMNS}, charged_bytes, state, expires_at_ms)
                 VALUES ($1, $2, '', 0, $3, $4, $6, 0, 'draft', $5) ON CONFLICT (space_id, file_id) DO NOTHING"
            ),
            &[
                &file.space_id,
                &file.file_id,
                &file.created_by,
                &int(file.created_at_ms),
                &int(expires_at_ms),
                &i64::from(file.epoch),
            ],
        )
        .await?;
        if opened == 0 {
            return Err(StoreError::FileTaken.into());
        }
    }
    let drafted: i64 = row(
        tx,
        "SELECT stored_bytes FROM files
         WHERE space_id = $1 AND file_id = $2 AND state = 'draft' AND created_by = $3 FOR UPDATE",
        &[&file.space_id, &file.file_id, &file.created_by],
    )
    .await?
    .ok_or(StoreError::CommitWithdrawn)?
    .try_get(0)?;
    // Presence is checked here, under the shards' locks, inside the transaction
    // that adds the references: a shard collected a moment ago is missing now, and
    // one present now cannot be collected once this commits (see crate::gc).
    let listed = list_shards(tx, file, slice, true).await?;
    let stored_bytes = uint(drafted).saturating_add(listed.stored_bytes);
    if stored_bytes > file.max_shard_bytes {
        return Err(StoreError::OverDeclared { stored: stored_bytes, bound: file.max_shard_bytes }.into());
    }
    // The writer's uploads of these shards are settled into the draft: their
    // charge moves to it.
    let addresses = address_array(slice);
    exec(tx, "DELETE FROM uploads WHERE user_id = $1 AND address = ANY($2)", &[&file.created_by, &addresses]).await?;
    exec(
        tx,
        "INSERT INTO file_shards (space_id, file_id, address)
         SELECT DISTINCT $1::text, $2::text, address FROM unnest($3::bytea[]) AS l(address)",
        &[&file.space_id, &file.file_id, &addresses],
    )
    .await?;
    exec(
        tx,
        "UPDATE files SET stored_bytes = $3, charged_bytes = charged_bytes + $4,
                          shard_count = shard_count + $5, expires_at_ms = $6
         WHERE space_id = $1 AND file_id = $2",
        &[
            &file.space_id,
            &file.file_id,
            &int(stored_bytes),
            &int(listed.settled_bytes),
            &int(slice.len() as u64),
            &int(expires_at_ms),
        ],
    )
    .await?;
    Ok(())
}

/// The last step of a commit ([`PgRecords::seal_draft`]) in the caller's
/// transaction, which holds the space's row alone, so commits into one space never
/// pass its quota together.
async fn seal(tx: &impl GenericClient, file: &NewFile, quotas: Quotas) -> Result<FileRecord, Failure> {
    require(tx, &file.space_id, &file.created_by, Role::Writer).await?;
    // A rotation between the steps: the record is sealed under a replaced key.
    require_epoch(tx, &file.space_id, file.epoch).await?;
    let draft = row(
        tx,
        "SELECT stored_bytes, charged_bytes, shard_count FROM files
         WHERE space_id = $1 AND file_id = $2 AND state = 'draft' AND created_by = $3 FOR UPDATE",
        &[&file.space_id, &file.file_id, &file.created_by],
    )
    .await?
    .ok_or(StoreError::CommitWithdrawn)?;
    let (stored_bytes, settled, count) =
        (uint(draft.try_get(0)?), draft.try_get::<_, i64>(1)?, uint(draft.try_get(2)?));
    if count != file.shards.len() as u64 {
        return Err(StoreError::Backend(format!("a draft of {count} shards sealed as {}", file.shards.len())).into());
    }
    // The creator's other charges wait until this one is decided.
    lock_user(tx, &file.created_by).await?;
    fits(tx, file, stored_bytes, uint(settled), quotas).await?;
    let charged = file_cost(stored_bytes, file.shards.len(), file.sealed_record.len());
    charge(tx, &file.created_by, int(charged) - settled, u64::MAX).await?;
    exec(
        tx,
        "UPDATE files SET state = 'live', sealed_record = $3, charged_bytes = $4, created_at_ms = $5, expires_at_ms = 0
         WHERE space_id = $1 AND file_id = $2",
        &[&file.space_id, &file.file_id, &file.sealed_record, &int(charged), &int(file.created_at_ms)],
    )
    .await?;
    Ok(FileRecord {
        space_id: file.space_id.clone(),
        file_id: file.file_id.clone(),
        sealed_record: file.sealed_record.clone(),
        stored_bytes,
        created_by: file.created_by.clone(),
        created_at_ms: file.created_at_ms,
        epoch: file.epoch,
    })
}

/// Withdraws files of a space that are not gone yet — `file_id`, or up to `limit`
/// of any — refunding whoever paid for them. Returns how many it withdrew.
async fn withdraw_files(
    tx: &impl GenericClient,
    space_id: &str,
    file_id: Option<&str>,
    limit: usize,
) -> Result<usize, Failure> {
    let withdrawn = match file_id {
        Some(file_id) => {
            rows(
                tx,
                "UPDATE files SET state = 'gone' WHERE space_id = $1 AND file_id = $2 AND state <> 'gone'
                 RETURNING created_by, charged_bytes",
                &[&space_id, &file_id],
            )
            .await?
        }
        None => {
            rows(
                tx,
                "UPDATE files SET state = 'gone' WHERE (space_id, file_id) IN
                    (SELECT space_id, file_id FROM files WHERE space_id = $1 AND state <> 'gone' LIMIT $2 FOR UPDATE)
                 RETURNING created_by, charged_bytes",
                &[&space_id, &int(limit as u64)],
            )
            .await?
        }
    };
    refund_payers(tx, &withdrawn).await?;
    Ok(withdrawn.len())
}

/// Refunds what rows of (payer, charged bytes) say.
async fn refund_payers(tx: &impl GenericClient, found: &[Row]) -> Result<(), Failure> {
    let payers = found
        .iter()
        .map(|r| Ok((r.try_get::<_, String>(0)?, uint(r.try_get(1)?))))
        .collect::<Result<Vec<_>, Failure>>()?;
    refund_all(tx, payers).await
}

/// Drops up to `limit` references held by files of a space — `file_id`'s, or any —
/// which must all be gone. Returns how many it dropped, and the shards no file
/// references any more.
async fn drop_references(
    tx: &impl GenericClient,
    space_id: &str,
    file_id: Option<&str>,
    limit: usize,
) -> Result<(usize, Vec<ShardAddress>), Failure> {
    let limit = int(limit as u64);
    let dropped = match file_id {
        Some(file_id) => {
            rows(
                tx,
                "DELETE FROM file_shards WHERE space_id = $1 AND file_id = $2 AND address IN
                    (SELECT address FROM file_shards WHERE space_id = $1 AND file_id = $2 LIMIT $3)
                 RETURNING address",
                &[&space_id, &file_id, &limit],
            )
            .await?
        }
        None => {
            rows(
                tx,
                "DELETE FROM file_shards WHERE (space_id, file_id, address) IN
                    (SELECT space_id, file_id, address FROM file_shards WHERE space_id = $1 LIMIT $2)
                 RETURNING address",
                &[&space_id, &limit],
            )
            .await?
        }
    };
    let dropped = addresses_of(&dropped)?;
    if dropped.is_empty() {
        return Ok((0, Vec::new()));
    }
    // Unwinders of files sharing a shard take turns at it, so that whichever drops
    // the last reference sees the others' drops and frees it.
    let addresses = address_array(&dropped);
    exec(tx, "SELECT 1 FROM shards WHERE address = ANY($1) ORDER BY address FOR NO KEY UPDATE", &[&addresses]).await?;
    let free = rows(
        tx,
        "SELECT l.address FROM unnest($1::bytea[]) AS l(address)
         WHERE NOT EXISTS (SELECT 1 FROM file_shards f WHERE f.address = l.address)",
        &[&addresses],
    )
    .await?;
    Ok((dropped.len(), addresses_of(&free)?))
}

#[async_trait]
impl Files for PgRecords {
    /// Waits until no one holds any of `addresses`, then holds them all until the
    /// returned hold drops ([`PgHold`]).
    async fn hold_shards(&self, addresses: &[ShardAddress]) -> Result<ShardHold, StoreError> {
        let mut keys: Vec<i64> = addresses.iter().map(hold_key).collect();
        keys.sort_unstable();
        keys.dedup();
        let keys = &keys;
        retry(|| async move {
            // Made before the wait, so that a wait given up, or refused, still gives
            // back whatever it took.
            let hold = PgHold(Some(self.holds.get().await?));
            if let Some(client) = &hold.0 {
                one(
                    client,
                    "SELECT count(pg_advisory_lock(k)) FROM (SELECT k FROM unnest($1::bigint[]) AS k ORDER BY k) AS keys",
                    &[keys],
                )
                .await?;
            }
            Ok(ShardHold::new(hold))
        })
        .await
    }

    /// Records that `user_id` uploaded a shard (after its bytes are durable): the
    /// shard's record (re-stamped to `now_ms`, never earlier than it was), and the
    /// user's upload of it, which pins it until `expires_at_ms` and is charged to them
    /// until then or until they commit it. Uploading it again moves the deadline.
    async fn record_upload(
        &self,
        user_id: &str,
        address: &ShardAddress,
        size: u64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let address = address.as_bytes().as_slice();
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // One user's uploads of one shard take turns: it is charged once.
            lock_user(&tx, user_id).await?;
            exec(
                &tx,
                "INSERT INTO shards (address, size, stored_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (address) DO UPDATE
                 SET size = excluded.size, stored_at_ms = greatest(shards.stored_at_ms, excluded.stored_at_ms)",
                &[&address, &int(size), &int(now_ms)],
            )
            .await?;
            let moved = exec(
                &tx,
                "UPDATE uploads SET expires_at_ms = greatest(expires_at_ms, $3) WHERE user_id = $1 AND address = $2",
                &[&user_id, &address, &int(expires_at_ms)],
            )
            .await?;
            if moved == 0 {
                exec(
                    &tx,
                    "INSERT INTO uploads (user_id, address, size, expires_at_ms) VALUES ($1, $2, $3, $4)",
                    &[&user_id, &address, &int(size), &int(expires_at_ms)],
                )
                .await?;
                // Checked before the bytes were written (crate::gc); recorded whatever now.
                charge(&tx, user_id, int(size), u64::MAX).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// For each address, in order, whether `user_id` has an upload of it pending;
    /// each one's deadline moves to `expires_at_ms`. Other users' uploads are not
    /// seen and not moved.
    async fn touch_uploads(
        &self,
        user_id: &str,
        addresses: &[ShardAddress],
        expires_at_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let listed = address_array(addresses);
        let listed = &listed;
        retry(|| async move {
            let client = self.client().await?;
            let moved = rows(
                &client,
                "UPDATE uploads SET expires_at_ms = greatest(expires_at_ms, $3)
                 WHERE user_id = $1 AND address = ANY($2) RETURNING address",
                &[&user_id, listed, &int(expires_at_ms)],
            )
            .await?;
            let moved: std::collections::HashSet<ShardAddress> = addresses_of(&moved)?.into_iter().collect();
            Ok(addresses.iter().map(|a| moved.contains(a)).collect())
        })
        .await
    }

    /// Drops up to `limit` uploads whose deadline is at or before `now_ms`, refunding
    /// their uploaders. Returns how many it dropped.
    async fn expire_uploads(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let due = rows(
                &tx,
                "SELECT user_id, address FROM uploads WHERE expires_at_ms <= $1 ORDER BY user_id, address LIMIT $2",
                &[&int(now_ms), &int(limit as u64)],
            )
            .await?;
            let (users, addresses): (Vec<String>, Vec<Vec<u8>>) = due
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<Vec<_>, Failure>>()?
                .into_iter()
                .unzip();
            // The users' rows first, as every other charge takes them: then the
            // uploads, whose deadline is checked again (a commit may have settled
            // one, an upload again moved it, another accelerator expired it).
            let mut payers = users.clone();
            payers.dedup();
            for payer in &payers {
                lock_user(&tx, payer).await?;
            }
            let expired = rows(
                &tx,
                "DELETE FROM uploads u USING unnest($2::text[], $3::bytea[]) AS d(user_id, address)
                 WHERE u.user_id = d.user_id AND u.address = d.address AND u.expires_at_ms <= $1
                 RETURNING u.user_id, u.size",
                &[&int(now_ms), &users, &addresses],
            )
            .await?;
            refund_payers(&tx, &expired).await?;
            tx.commit().await?;
            Ok(expired.len())
        })
        .await
    }

    /// Whether a shard is recorded under `address`.
    async fn shard_recorded(&self, address: &ShardAddress) -> Result<bool, StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            let found =
                row(&client, "SELECT 1 FROM shards WHERE address = $1", &[&address.as_bytes().as_slice()]).await?;
            Ok(found.is_some())
        })
        .await
    }

    /// Up to `limit` recorded shards that no committed file references, no pending
    /// upload pins, and whose `stored_at` is before `stored_before_ms`: candidates
    /// for the collector.
    async fn collectable_shards(&self, stored_before_ms: u64, limit: usize) -> Result<Vec<ShardAddress>, StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            let found = rows(
                &client,
                "SELECT address FROM shards s
                 WHERE stored_at_ms < $1 AND NOT EXISTS (SELECT 1 FROM file_shards f WHERE f.address = s.address)
                 AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.address = s.address)
                 ORDER BY stored_at_ms LIMIT $2",
                &[&int(stored_before_ms), &int(limit as u64)],
            )
            .await?;
            addresses_of(&found)
        })
        .await
    }

    /// Drops, in one transaction, the record of each of `addresses` that at this
    /// moment no file references, no pending upload pins, and that was stamped
    /// before `stored_before_ms` (`u64::MAX`: however recently). Returns those it
    /// dropped, in the order given; the caller then deletes their bytes.
    async fn forget_shards(
        &self,
        addresses: &[ShardAddress],
        stored_before_ms: u64,
    ) -> Result<Vec<ShardAddress>, StoreError> {
        let listed = address_array(addresses);
        let listed = &listed;
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Locked first, then checked by a statement of its own: it sees every
            // reference and upload committed by whoever held the shard before.
            let locked = rows(
                &tx,
                "SELECT address FROM shards WHERE address = ANY($1) AND stored_at_ms < $2
                 ORDER BY address FOR UPDATE",
                &[listed, &int(stored_before_ms)],
            )
            .await?;
            let locked = locked.iter().map(|r| r.try_get::<_, Vec<u8>>(0)).collect::<Result<Vec<_>, _>>()?;
            let dropped = rows(
                &tx,
                "DELETE FROM shards s WHERE address = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM file_shards f WHERE f.address = s.address)
                 AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.address = s.address)
                 RETURNING address",
                &[&locked],
            )
            .await?;
            tx.commit().await?;
            // Each once, as given: an address listed twice was dropped once.
            let mut dropped: std::collections::HashSet<ShardAddress> = addresses_of(&dropped)?.into_iter().collect();
            Ok(addresses.iter().filter(|a| dropped.remove(a)).copied().collect())
        })
        .await
    }

    /// Checks, without writing, what [`PgRecords::draft_file`] and
    /// [`PgRecords::seal_draft`] would check of the whole file — its epoch is the
    /// space's current one with no rotation due, its id is free, every shard may be
    /// listed, it fits its declared size and `quotas` — so a commit of many steps is
    /// refused before its first one in all but a race, and its writer's uploads stay
    /// as they were.
    async fn check_commit(&self, file: &NewFile, quotas: Quotas) -> Result<(), StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = snapshot(&mut client).await?;
            require(&tx, &file.space_id, &file.created_by, Role::Writer).await?;
            require_epoch(&tx, &file.space_id, file.epoch).await?;
            file_id_free(&tx, file).await?;
            let listed = list_shards(&tx, file, &file.shards, false).await?;
            fits(&tx, file, listed.stored_bytes, listed.settled_bytes, quotas).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Commits a file that takes one step, in one transaction: what
    /// [`PgRecords::draft_file`] and [`PgRecords::seal_draft`] do, and a refusal
    /// changes nothing.
    async fn commit_whole(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, &file.space_id, Hold::Alone).await?;
            // The creator before the shards and uploads, as an upload takes them (an
            // unknown creator is refused by the role check that follows).
            exec(&tx, "SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE", &[&file.created_by]).await?;
            draft_step(&tx, file, 0..file.shards.len(), 0).await?;
            let record = seal(&tx, file, quotas).await?;
            tx.commit().await?;
            Ok(record)
        })
        .await
    }

    /// One step of a commit: adds `file.shards[range]` to the file's draft, which the
    /// first step (`range.start == 0`) opens, invisible, under the file's id
    /// ([`StoreError::FileTaken`] if the id is used). Each listed shard must be
    /// stored and be either the creator's own pending upload or already used by a
    /// committed file of the same space; the creator's uploads of them are settled
    /// into the draft (their charge moves to it), which pins them until
    /// `expires_at_ms`. A refused step changes nothing.
    async fn draft_file(&self, file: &NewFile, range: Range<usize>, expires_at_ms: u64) -> Result<(), StoreError> {
        let range = &range;
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Shared: steps of other files in the space go on beside this one, while
            // a change of membership waits for it.
            lock_space(&tx, &file.space_id, Hold::Shared).await?;
            draft_step(&tx, file, range.clone(), expires_at_ms).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The last step of a commit: makes the draft, holding every listed shard, the
    /// visible file, if its shards hold no more than the declared size needs and
    /// both the space and the creator stay within `quotas` (the file costs
    /// [`file_cost`]). A refused seal changes nothing.
    async fn seal_draft(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, &file.space_id, Hold::Alone).await?;
            let record = seal(&tx, file, quotas).await?;
            tx.commit().await?;
            Ok(record)
        })
        .await
    }

    /// Withdraws `creator`'s draft of a file, refunding what it was charged, for
    /// [`PgRecords::unwind`] to take apart. Nothing happens if there is none.
    async fn abandon_draft(&self, space_id: &str, file_id: &str, creator: &str) -> Result<(), StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let withdrawn = rows(
                &tx,
                "UPDATE files SET state = 'gone'
                 WHERE space_id = $1 AND file_id = $2 AND state = 'draft' AND created_by = $3
                 RETURNING created_by, charged_bytes",
                &[&space_id, &file_id, &creator],
            )
            .await?;
            refund_payers(&tx, &withdrawn).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    fn step(&self) -> usize {
        self.step
    }

    /// The space's files, oldest first; `actor` must be a member.
    async fn files(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<FileRecord>, StoreError> {
        let (ms, n) = position(page)?;
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = snapshot(&mut client).await?;
            require(&tx, space_id, actor, Role::Reader).await?;
            let found = rows(
                &tx,
                &format!(
                    "SELECT {FILE_COLUMNS}, n FROM files WHERE space_id = $1 AND state = 'live'
                     AND (created_at_ms, n) > ($2, $3)
                     ORDER BY created_at_ms, n LIMIT $4"
                ),
                &[&space_id, &ms, &n, &page_rows(page)],
            )
            .await?;
            let files = found
                .iter()
                .map(|r| Ok((file_from_row(r)?, cursor_at(r, 5, 7)?)))
                .collect::<Result<Vec<_>, Failure>>()?;
            tx.commit().await?;
            Ok(paged(files, page.limit))
        })
        .await
    }

    /// One file; `actor` must be a member.
    async fn file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<Option<FileRecord>, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = snapshot(&mut client).await?;
            require(&tx, space_id, actor, Role::Reader).await?;
            let found = row(
                &tx,
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE space_id = $1 AND file_id = $2 AND state = 'live'"),
                &[&space_id, &file_id],
            )
            .await?;
            tx.commit().await?;
            found.as_ref().map(file_from_row).transpose()
        })
        .await
    }

    /// Withdraws a file, which `actor` must be a writer or owner to do: it is no
    /// longer listed or counted, and its committer is refunded;
    /// [`PgRecords::unwind`] then drops its references. `false` if there was no
    /// such file.
    async fn delete_file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<bool, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, space_id, Hold::Alone).await?;
            require(&tx, space_id, actor, Role::Writer).await?;
            let withdrawn = rows(
                &tx,
                "UPDATE files SET state = 'gone' WHERE space_id = $1 AND file_id = $2 AND state = 'live'
                 RETURNING created_by, charged_bytes",
                &[&space_id, &file_id],
            )
            .await?;
            refund_payers(&tx, &withdrawn).await?;
            tx.commit().await?;
            Ok(!withdrawn.is_empty())
        })
        .await
    }

    /// One step of taking a withdrawn file or space apart: drops up to `limit` of its
    /// references (and, once none are left, the thing itself). Returns the shards
    /// that no file references any more, for the caller to free.
    async fn unwind(&self, what: &Withdrawn, limit: usize) -> Result<Unwound, StoreError> {
        let limit = limit.max(1);
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let unwound = match what {
                Withdrawn::File { space_id, file_id } => {
                    // Unwinders of one file take turns at its row.
                    let gone = row(
                        &tx,
                        "SELECT 1 FROM files WHERE space_id = $1 AND file_id = $2 AND state = 'gone' FOR UPDATE",
                        &[space_id, file_id],
                    )
                    .await?;
                    if gone.is_none() {
                        return Ok(Unwound { freed: Vec::new(), done: true });
                    }
                    let (dropped, freed) = drop_references(&tx, space_id, Some(file_id), limit).await?;
                    let done = dropped < limit
                        && exec(
                            &tx,
                            "DELETE FROM files WHERE space_id = $1 AND file_id = $2 AND state = 'gone'
                                AND NOT EXISTS (SELECT 1 FROM file_shards WHERE space_id = $1 AND file_id = $2)",
                            &[space_id, file_id],
                        )
                        .await?
                            > 0;
                    Unwound { freed, done }
                }
                Withdrawn::Space { space_id } => {
                    let gone =
                        row(&tx, "SELECT 1 FROM spaces WHERE space_id = $1 AND gone FOR UPDATE", &[space_id]).await?;
                    if gone.is_none() {
                        return Ok(Unwound { freed: Vec::new(), done: true });
                    }
                    // First every file is withdrawn, then their references go, then
                    // the files, then the space.
                    if withdraw_files(&tx, space_id, None, limit).await? > 0 {
                        Unwound::default()
                    } else {
                        let (dropped, freed) = drop_references(&tx, space_id, None, limit).await?;
                        let done = dropped == 0
                            && exec(
                                &tx,
                                "DELETE FROM files WHERE (space_id, file_id) IN
                                    (SELECT space_id, file_id FROM files WHERE space_id = $1 LIMIT $2)",
                                &[space_id, &int(limit as u64)],
                            )
                            .await?
                                == 0
                            && exec(&tx, "DELETE FROM spaces WHERE space_id = $1", &[space_id]).await? > 0;
                        Unwound { freed, done }
                    }
                }
            };
            tx.commit().await?;
            Ok(unwound)
        })
        .await
    }

    /// Withdraws the drafts whose deadline passed by `now_ms` (a commit that never
    /// finished: the accelerator stopped under it), then lists up to `limit` things
    /// withdrawn and not yet taken apart, for the collector.
    async fn withdrawn(&self, now_ms: u64, limit: usize) -> Result<Vec<Withdrawn>, StoreError> {
        let limit = int(limit as u64);
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // A draft a step holds now is being worked on: it is not taken from under it.
            let expired = rows(
                &tx,
                "UPDATE files SET state = 'gone' WHERE (space_id, file_id) IN
                    (SELECT space_id, file_id FROM files WHERE state = 'draft' AND expires_at_ms <= $1
                     LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING created_by, charged_bytes",
                &[&int(now_ms), &limit],
            )
            .await?;
            refund_payers(&tx, &expired).await?;
            let spaces = rows(&tx, "SELECT space_id FROM spaces WHERE gone LIMIT $1", &[&limit]).await?;
            let files = rows(
                &tx,
                "SELECT space_id, file_id FROM files WHERE state = 'gone'
                 AND NOT EXISTS (SELECT 1 FROM spaces s WHERE s.space_id = files.space_id AND s.gone) LIMIT $1",
                &[&limit],
            )
            .await?;
            tx.commit().await?;
            let mut found = spaces
                .iter()
                .map(|r| Ok(Withdrawn::Space { space_id: r.try_get(0)? }))
                .collect::<Result<Vec<_>, Failure>>()?;
            for r in &files {
                found.push(Withdrawn::File { space_id: r.try_get(0)?, file_id: r.try_get(1)? });
            }
            found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(found)
        })
        .await
    }
}
