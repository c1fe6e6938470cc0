//! Kv values and each user's change log.
//!
//! A write locks its user's row first ([`lock_user`]) and holds it to the commit,
//! so the user's writes take turns on every accelerator: each increments `kv_seq`
//! and appends its change under the lock, and sequence numbers are 1, 2, 3, … in
//! commit order, none given twice or skipped. A reader that sees seq `n` committed
//! sees every change before it.

use coffer_core::proto::{KvRename, KvRenameResponse};
use deadpool_postgres::GenericClient;
use futures_util::TryFutureExt as _;
use tokio_postgres::Row;

use super::accounts::lock_user;
use super::listen::wake_feeds;
use super::{Failure, Params, PgRecords, exec, int, retry, row, rows, snapshot, uint};
use crate::store::{
    Change, ChangeWindow, Kv, LegacyKey, LegacyPage, Page, PageRequest, Quota, RenameStep, StoreError, StoredValue,
    async_trait, kv_cost, set_is_legacy,
};

/// Legacy keys read per round trip while a [`LegacyPage`] fills: few, since each
/// may hold a value of up to 256 KiB and the page stops at 512 KiB of them.
const LEGACY_ROWS_PER_FETCH: i32 = 16;

/// Reads a value from three columns (sealed, plain_json, plain_mac) starting at `at`.
fn value_from_row(row: &Row, at: usize) -> Result<Option<StoredValue>, Failure> {
    let sealed: Option<Vec<u8>> = row.try_get(at)?;
    let json: Option<String> = row.try_get(at + 1)?;
    let mac: Option<Vec<u8>> = row.try_get(at + 2)?;
    Ok(match (sealed, json, mac) {
        (Some(bytes), _, _) => Some(StoredValue::Sealed(bytes)),
        (None, Some(json), Some(mac)) => Some(StoredValue::Plain {
            json,
            mac: mac.try_into().map_err(|_| Failure::Store(StoreError::Backend("a MAC is not 32 bytes".into())))?,
        }),
        _ => None,
    })
}

/// The three value columns' contents for a value.
fn value_columns(value: &StoredValue) -> (Option<&[u8]>, Option<&str>, Option<&[u8]>) {
    match value {
        StoredValue::Sealed(bytes) => (Some(bytes), None, None),
        StoredValue::Plain { json, mac } => (None, Some(json), Some(mac)),
    }
}

/// The stored value of one key.
async fn stored_value(
    c: &impl GenericClient,
    user_id: &str,
    collection: &str,
    id: &str,
) -> Result<Option<StoredValue>, Failure> {
    let found = row(
        c,
        "SELECT sealed, plain_json, plain_mac FROM kv WHERE user_id = $1 AND collection = $2 AND id = $3",
        &[&user_id, &collection, &id],
    )
    .await?;
    Ok(match found {
        Some(r) => value_from_row(&r, 0)?,
        None => None,
    })
}

/// Locks `user_id`'s row, held to the commit, so the user's writes take turns on
/// every accelerator, and reads in the same statement what they store and the
/// key's current value.
async fn lock_with_value(
    tx: &impl GenericClient,
    user_id: &str,
    collection: &str,
    id: &str,
) -> Result<(u64, Option<StoredValue>), Failure> {
    let found = row(
        tx,
        "SELECT u.used_bytes, k.sealed, k.plain_json, k.plain_mac FROM users u
         LEFT JOIN kv k ON k.user_id = u.user_id AND k.collection = $2 AND k.id = $3
         WHERE u.user_id = $1 FOR UPDATE OF u",
        &[&user_id, &collection, &id],
    )
    .await?;
    let found = found.ok_or_else(|| Failure::Store(StoreError::Backend(format!("no user {user_id:?}"))))?;
    Ok((uint(found.try_get(0)?), value_from_row(&found, 1)?))
}

/// What the user stores after adding `delta` to `used`; a growth past `allowance`
/// is refused (a shrink never is).
fn charged(used: u64, delta: i64, allowance: u64) -> Result<i64, Failure> {
    let after = int(used).saturating_add(delta).max(0);
    if delta > 0 && uint(after) > allowance {
        return Err(
            StoreError::QuotaExceeded { limit: Quota::User, used, adding: uint(delta), quota: allowance }.into()
        );
    }
    Ok(after)
}

/// Writes (or, for `None`, deletes) the key's value, sets what the user stores to
/// `used_after`, appends the change under the next sequence number, drops the key's
/// earlier change, prunes the log to its last `retain` entries and wakes every
/// accelerator's feeds of the user on commit ([`wake_feeds`]) — inside the caller's
/// transaction, which holds the user's row lock ([`lock_with_value`]).
///
/// The statements are sent together and run in the order sent: one round trip, not
/// six. Those after the `UPDATE` read the sequence number it set from the user's row.
async fn write_change(
    tx: &impl GenericClient,
    (user_id, retain): (&str, u64),
    collection: &str,
    id: &str,
    value: Option<&StoredValue>,
    used_after: i64,
) -> Result<u64, Failure> {
    let (sealed, json, mac) = value.map(value_columns).unwrap_or((None, None, None));
    let legacy = set_is_legacy(collection, id);
    let write_value = match value {
        Some(_) => {
            "INSERT INTO kv (user_id, collection, id, sealed, plain_json, plain_mac, legacy_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, collection, id)
             DO UPDATE SET sealed = excluded.sealed, plain_json = excluded.plain_json, plain_mac = excluded.plain_mac,
                           legacy_name = kv.legacy_name OR excluded.legacy_name"
        }
        None => "DELETE FROM kv WHERE user_id = $1 AND collection = $2 AND id = $3",
    };
    let statements = futures_util::future::try_join_all(
        [
            write_value,
            "UPDATE users SET used_bytes = $2, kv_seq = kv_seq + 1 WHERE user_id = $1 RETURNING kv_seq",
            // The key's earlier change goes first (kv_changes_by_key): the log keeps
            // one change per key.
            "DELETE FROM kv_changes WHERE user_id = $1 AND collection = $2 AND id = $3",
            "INSERT INTO kv_changes (user_id, seq, collection, id, sealed, plain_json, plain_mac)
             SELECT $1, kv_seq, $2, $3, $4, $5, $6 FROM users WHERE user_id = $1",
            "DELETE FROM kv_changes WHERE user_id = $1 AND seq <= (SELECT kv_seq FROM users WHERE user_id = $1) - $2",
        ]
        .map(|sql| tx.prepare_cached(sql)),
    )
    .await?;
    let [value_sql, seq_sql, drop_sql, append_sql, prune_sql] = &statements[..] else { unreachable!() };
    let retain = int(retain);
    let change: &Params<'_> = &[&user_id, &collection, &id, &sealed, &json, &mac];
    let set: &Params<'_> = &[&user_id, &collection, &id, &sealed, &json, &mac, &legacy];
    let key: &Params<'_> = &[&user_id, &collection, &id];
    let next: &Params<'_> = &[&user_id, &used_after];
    let prune: &Params<'_> = &[&user_id, &retain];
    let (_, seq, _, _, _, _) = futures_util::try_join!(
        tx.execute(value_sql, if value.is_some() { set } else { key }).err_into::<Failure>(),
        tx.query_one(seq_sql, next).err_into(),
        tx.execute(drop_sql, key).err_into(),
        tx.execute(append_sql, change).err_into(),
        tx.execute(prune_sql, prune).err_into(),
        // Where the change feed of other accelerators hears of it: delivered on commit.
        wake_feeds(tx, user_id),
    )?;
    Ok(uint(seq.try_get(0)?))
}

/// `rename.from`'s value if it is one of `user_id`'s legacy keys, and whether they
/// store a key at `rename.to`: what [`RenameStep::of`] decides with.
async fn legacy_and_target(
    tx: &impl GenericClient,
    user_id: &str,
    rename: &KvRename,
) -> Result<Option<(StoredValue, bool)>, Failure> {
    let (from, to) = (&rename.from, &rename.to);
    let found = row(
        tx,
        "SELECT f.sealed, f.plain_json, f.plain_mac,
                EXISTS (SELECT 1 FROM kv t WHERE t.user_id = $1 AND t.collection = $4 AND t.id = $5)
         FROM kv f WHERE f.user_id = $1 AND f.collection = $2 AND f.id = $3 AND f.legacy_name",
        &[&user_id, &from.collection, &from.id, &to.collection, &to.id],
    )
    .await?;
    match found {
        Some(r) => Ok(value_from_row(&r, 0)?.zip(Some(r.try_get::<_, bool>(3)?))),
        None => Ok(None),
    }
}

/// Takes one rename's step ([`RenameStep`]) inside the caller's transaction. A move's
/// statements are sent together and run in the order sent: one round trip.
async fn rename_step(
    tx: &impl GenericClient,
    user_id: &str,
    rename: &KvRename,
    step: RenameStep,
) -> Result<(), Failure> {
    let (from, to) = (&rename.from, &rename.to);
    let from_key: &Params<'_> = &[&user_id, &from.collection, &from.id];
    match step {
        RenameStep::Skip => {}
        RenameStep::Unmark => {
            exec(tx, "UPDATE kv SET legacy_name = false WHERE user_id = $1 AND collection = $2 AND id = $3", from_key)
                .await?;
        }
        RenameStep::Drop => {
            exec(tx, "DELETE FROM kv WHERE user_id = $1 AND collection = $2 AND id = $3", from_key).await?;
            exec(tx, "DELETE FROM kv_changes WHERE user_id = $1 AND collection = $2 AND id = $3", from_key).await?;
        }
        RenameStep::Move => {
            let statements = futures_util::future::try_join_all(
                [
                    // `to`'s earlier entry (a delete) goes first: the log keeps one per
                    // key (kv_changes_by_key).
                    "DELETE FROM kv_changes WHERE user_id = $1 AND collection = $2 AND id = $3",
                    "UPDATE kv_changes SET collection = $4, id = $5 WHERE user_id = $1 AND collection = $2 AND id = $3",
                    "UPDATE kv SET collection = $4, id = $5, legacy_name = false
                     WHERE user_id = $1 AND collection = $2 AND id = $3",
                ]
                .map(|sql| tx.prepare_cached(sql)),
            )
            .await?;
            let [stale_sql, log_sql, kv_sql] = &statements[..] else { unreachable!() };
            let to_key: &Params<'_> = &[&user_id, &to.collection, &to.id];
            let both: &Params<'_> = &[&user_id, &from.collection, &from.id, &to.collection, &to.id];
            futures_util::try_join!(
                tx.execute(stale_sql, to_key).err_into::<Failure>(),
                tx.execute(log_sql, both).err_into(),
                tx.execute(kv_sql, both).err_into(),
            )?;
        }
    }
    Ok(())
}

#[async_trait]
impl Kv for PgRecords {
    /// Reads one value.
    async fn kv_get(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<StoredValue>, StoreError> {
        retry(|| async move {
            let client = self.client().await?;
            stored_value(&client, user_id, collection, id).await
        })
        .await
    }

    /// Writes one value and appends the change to the log, in one transaction,
    /// charging the difference in [`kv_cost`] to the user within `allowance`. The
    /// log keeps only this latest change of the key. Returns its sequence number.
    async fn kv_set(
        &self,
        user_id: &str,
        collection: &str,
        id: &str,
        value: &StoredValue,
        allowance: u64,
    ) -> Result<u64, StoreError> {
        let retain = self.retain;
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let (used, old) = lock_with_value(&tx, user_id, collection, id).await?;
            let delta =
                int(kv_cost(collection, id, value)) - old.as_ref().map_or(0, |v| int(kv_cost(collection, id, v)));
            let after = charged(used, delta, allowance)?;
            let seq = write_change(&tx, (user_id, retain), collection, id, Some(value), after).await?;
            tx.commit().await?;
            Ok(seq)
        })
        .await
    }

    /// Deletes one value and refunds its cost; if it existed, appends the change to
    /// the log in the same transaction (replacing the key's earlier change) and
    /// returns its sequence number.
    async fn kv_delete(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let retain = self.retain;
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let (used, old) = lock_with_value(&tx, user_id, collection, id).await?;
            let Some(old) = old else { return Ok(None) };
            let after = charged(used, -int(kv_cost(collection, id, &old)), u64::MAX)?;
            let seq = write_change(&tx, (user_id, retain), collection, id, None, after).await?;
            tx.commit().await?;
            Ok(Some(seq))
        })
        .await
    }

    /// A page of the ids in a collection, in byte order.
    async fn kv_list(&self, user_id: &str, collection: &str, page: &PageRequest) -> Result<Page<String>, StoreError> {
        let after = page.after.as_deref().unwrap_or("");
        retry(|| async move {
            let client = self.client().await?;
            let found = rows(
                &client,
                "SELECT id FROM kv WHERE user_id = $1 AND collection = $2 AND id > $3 ORDER BY id LIMIT $4",
                &[&user_id, &collection, &after, &super::page_rows(page)],
            )
            .await?;
            let ids = found
                .iter()
                .map(|r| r.try_get::<_, String>(0).map(|id| (id.clone(), id)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(super::paged(ids, page.limit))
        })
        .await
    }

    /// The user's latest sequence number and up to `limit` retained changes after `after`.
    async fn changes_after(&self, user_id: &str, after: u64, limit: usize) -> Result<ChangeWindow, StoreError> {
        let retain = self.retain;
        retry(|| async move {
            let mut client = self.client().await?;
            // One snapshot: the head and the changes agree.
            let tx = snapshot(&mut client).await?;
            let head = row(&tx, "SELECT kv_seq FROM users WHERE user_id = $1", &[&user_id]).await?;
            let head = uint(head.map(|r| r.try_get(0)).transpose()?.unwrap_or(0));
            let found = rows(
                &tx,
                "SELECT seq, collection, id, sealed, plain_json, plain_mac FROM kv_changes
                 WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&user_id, &int(after), &int(limit as u64)],
            )
            .await?;
            let changes = found
                .iter()
                .map(|r| {
                    Ok(Change {
                        seq: uint(r.try_get(0)?),
                        collection: r.try_get(1)?,
                        id: r.try_get(2)?,
                        value: value_from_row(r, 3)?,
                    })
                })
                .collect::<Result<Vec<_>, Failure>>()?;
            tx.commit().await?;
            Ok(ChangeWindow { head, floor: head.saturating_sub(retain), changes })
        })
        .await
    }

    /// The user's first legacy keys with their values, as [`LegacyPage`] takes them,
    /// read a few rows at a time from one snapshot so that no more values are
    /// fetched than the page nearly holds.
    async fn kv_legacy(&self, user_id: &str, limit: usize) -> Result<Vec<LegacyKey>, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            // A portal, which reads its rows as asked, lives in a transaction.
            let tx = snapshot(&mut client).await?;
            let stmt = tx
                .prepare_cached(
                    "SELECT collection, id, sealed, plain_json, plain_mac FROM kv
                     WHERE user_id = $1 AND legacy_name ORDER BY collection, id LIMIT $2",
                )
                .await?;
            let portal = tx.bind(&stmt, &[&user_id, &int(limit as u64)]).await?;
            let mut page = LegacyPage::new(limit);
            'read: loop {
                let found = tx.query_portal(&portal, LEGACY_ROWS_PER_FETCH).await?;
                for r in &found {
                    // A row without a readable value is no key (as kv_get answers it).
                    let Some(value) = value_from_row(r, 2)? else { continue };
                    if !page.push(LegacyKey { collection: r.try_get(0)?, id: r.try_get(1)?, value }) {
                        break 'read;
                    }
                }
                if found.len() < LEGACY_ROWS_PER_FETCH as usize {
                    break;
                }
            }
            tx.commit().await?;
            Ok(page.into_keys())
        })
        .await
    }

    /// Moves the user's legacy keys to their sealed names, in one transaction that
    /// holds the user's row lock ([`lock_user`]) from the first rename to the commit.
    /// A user with no legacy key gets zeros at once, before the lock: as if the
    /// renames came just before a legacy key written meanwhile.
    async fn kv_rename(&self, user_id: &str, renames: &[KvRename]) -> Result<KvRenameResponse, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let mut answer = KvRenameResponse { renamed: 0, dropped: 0 };
            let any_legacy =
                row(&tx, "SELECT EXISTS (SELECT 1 FROM kv WHERE user_id = $1 AND legacy_name)", &[&user_id])
                    .await?
                    .map(|r| r.try_get::<_, bool>(0))
                    .transpose()?
                    .unwrap_or(false);
            if !any_legacy {
                tx.commit().await?;
                return Ok(answer);
            }
            let used = lock_user(&tx, user_id).await?;
            let mut delta = 0i64;
            for rename in renames {
                let found = legacy_and_target(&tx, user_id, rename).await?;
                let (step, bytes) = RenameStep::of(rename, found.as_ref());
                rename_step(&tx, user_id, rename, step).await?;
                delta = delta.saturating_add(bytes);
                step.count(&mut answer);
            }
            // Never refused: a migration must not fail on the allowance.
            let after = charged(used, delta, u64::MAX)?;
            exec(&tx, "UPDATE users SET used_bytes = $2 WHERE user_id = $1", &[&user_id, &after]).await?;
            tx.commit().await?;
            Ok(answer)
        })
        .await
    }
}
