//! Kv values and each user's change log in SQLite.

use super::*;

/// Reads a value from three columns (sealed, plain_json, plain_mac) starting at `at`.
pub(super) fn value_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<StoredValue>> {
    let sealed: Option<Vec<u8>> = row.get(at)?;
    let json: Option<String> = row.get(at + 1)?;
    let mac: Option<[u8; 32]> = row.get(at + 2)?;
    Ok(match (sealed, json, mac) {
        (Some(bytes), _, _) => Some(StoredValue::Sealed(bytes)),
        (None, Some(json), Some(mac)) => Some(StoredValue::Plain { json, mac }),
        _ => None,
    })
}

/// The stored value of one key.
pub(super) fn stored_value(
    conn: &Connection,
    user_id: &str,
    collection: &str,
    id: &str,
) -> Result<Option<StoredValue>, StoreError> {
    let found = conn
        .row(
            "SELECT sealed, plain_json, plain_mac FROM kv WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
            params![user_id, collection, id],
            |r| value_from_row(r, 0),
        )
        .optional()?;
    Ok(found.flatten())
}

/// The three value columns' contents for a value.
pub(super) fn value_columns(value: &StoredValue) -> (Option<&[u8]>, Option<&str>, Option<&[u8]>) {
    match value {
        StoredValue::Sealed(bytes) => (Some(bytes), None, None),
        StoredValue::Plain { json, mac } => (None, Some(json), Some(mac)),
    }
}

/// Appends a change to `user_id`'s log, drops the key's earlier change and prunes
/// the log to its last `retain` entries, inside the caller's transaction.
pub(super) fn append_change(
    tx: &Connection,
    (user_id, retain): (&str, u64),
    collection: &str,
    id: &str,
    value: Option<&StoredValue>,
) -> rusqlite::Result<u64> {
    let seq: i64 =
        tx.row("UPDATE users SET kv_seq = kv_seq + 1 WHERE user_id = ?1 RETURNING kv_seq", [user_id], |r| r.get(0))?;
    // The key's earlier change goes first, found by key (kv_changes_by_key): the log
    // keeps one change per key.
    tx.exec(
        "DELETE FROM kv_changes WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
        params![user_id, collection, id],
    )?;
    let (sealed, json, mac) = value.map(value_columns).unwrap_or((None, None, None));
    tx.exec(
        "INSERT INTO kv_changes (user_id, seq, collection, id, sealed, plain_json, plain_mac)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![user_id, seq, collection, id, sealed, json, mac],
    )?;
    tx.exec("DELETE FROM kv_changes WHERE user_id = ?1 AND seq <= ?2", params![user_id, seq - int(retain)])?;
    Ok(uint(seq))
}

/// `rename.from`'s value if it is one of `user_id`'s legacy keys, and whether they
/// store a key at `rename.to`: what [`RenameStep::of`] decides with.
fn legacy_and_target(
    conn: &Connection,
    user_id: &str,
    rename: &KvRename,
) -> rusqlite::Result<Option<(StoredValue, bool)>> {
    let (from, to) = (&rename.from, &rename.to);
    let found = conn
        .row(
            "SELECT f.sealed, f.plain_json, f.plain_mac,
                    EXISTS (SELECT 1 FROM kv t WHERE t.user_id = ?1 AND t.collection = ?4 AND t.id = ?5)
             FROM kv f WHERE f.user_id = ?1 AND f.collection = ?2 AND f.id = ?3 AND f.legacy_name = 1",
            params![user_id, from.collection, from.id, to.collection, to.id],
            |r| Ok(value_from_row(r, 0)?.zip(Some(r.get::<_, bool>(3)?))),
        )
        .optional()?;
    Ok(found.flatten())
}

/// Takes one rename's step ([`RenameStep`]) inside the caller's transaction.
fn rename_step(tx: &Connection, user_id: &str, rename: &KvRename, step: RenameStep) -> rusqlite::Result<()> {
    let (from, to) = (&rename.from, &rename.to);
    let keys = params![user_id, from.collection, from.id, to.collection, to.id];
    match step {
        RenameStep::Skip => {}
        RenameStep::Unmark => {
            tx.exec(
                "UPDATE kv SET legacy_name = 0 WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
                params![user_id, from.collection, from.id],
            )?;
        }
        RenameStep::Drop => {
            let key = params![user_id, from.collection, from.id];
            tx.exec("DELETE FROM kv WHERE user_id = ?1 AND collection = ?2 AND id = ?3", key)?;
            tx.exec("DELETE FROM kv_changes WHERE user_id = ?1 AND collection = ?2 AND id = ?3", key)?;
        }
        RenameStep::Move => {
            // `to`'s earlier entry (a delete) goes first: the log keeps one per key.
            tx.exec(
                "DELETE FROM kv_changes WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
                params![user_id, to.collection, to.id],
            )?;
            tx.exec(
                "UPDATE kv_changes SET collection = ?4, id = ?5 WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
                keys,
            )?;
            tx.exec(
                "UPDATE kv SET collection = ?4, id = ?5, legacy_name = 0
                 WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
                keys,
            )?;
        }
    }
    Ok(())
}

impl Db {
    pub(super) fn kv_get(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<StoredValue>, StoreError> {
        stored_value(&self.reader(), user_id, collection, id)
    }

    pub(super) fn kv_set(
        &self,
        user_id: &str,
        collection: &str,
        id: &str,
        value: &StoredValue,
        allowance: u64,
    ) -> Result<u64, StoreError> {
        let (user_id, collection, id, value) =
            (user_id.to_owned(), collection.to_owned(), id.to_owned(), value.to_owned());
        let retain = self.retain;
        self.write(move |tx| {
            let (user_id, collection, id, value) = (&user_id, &collection, &id, &value);
            let old = stored_value(tx, user_id, collection, id)?;
            let delta =
                int(kv_cost(collection, id, value)) - old.as_ref().map_or(0, |v| int(kv_cost(collection, id, v)));
            charge(tx, user_id, delta, allowance)?;
            let (sealed, json, mac) = value_columns(value);
            let legacy = set_is_legacy(collection, id);
            tx.exec(
                "INSERT INTO kv (user_id, collection, id, sealed, plain_json, plain_mac, legacy_name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (user_id, collection, id)
                 DO UPDATE SET sealed = excluded.sealed, plain_json = excluded.plain_json, plain_mac = excluded.plain_mac,
                               legacy_name = kv.legacy_name OR excluded.legacy_name",
                params![user_id, collection, id, sealed, json, mac, legacy],
            )
            .map_err(backend)?;
            let seq = append_change(tx, (user_id, retain), collection, id, Some(value)).map_err(backend)?;
            Ok(seq)
        })
    }

    pub(super) fn kv_delete(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let (user_id, collection, id) = (user_id.to_owned(), collection.to_owned(), id.to_owned());
        let retain = self.retain;
        self.write(move |tx| {
            let (user_id, collection, id) = (&user_id, &collection, &id);
            let Some(old) = stored_value(tx, user_id, collection, id)? else { return Ok(None) };
            tx.exec(
                "DELETE FROM kv WHERE user_id = ?1 AND collection = ?2 AND id = ?3",
                params![user_id, collection, id],
            )
            .map_err(backend)?;
            refund(tx, user_id, kv_cost(collection, id, &old))?;
            let seq = append_change(tx, (user_id, retain), collection, id, None).map_err(backend)?;
            Ok(Some(seq))
        })
    }

    pub(super) fn kv_list(
        &self,
        user_id: &str,
        collection: &str,
        page: &PageRequest,
    ) -> Result<Page<String>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM kv WHERE user_id = ?1 AND collection = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
        )?;
        let after = page.after.as_deref().unwrap_or("");
        let ids = stmt
            .query_map(params![user_id, collection, after, int(page.limit as u64 + 1)], |r| {
                let id: String = r.get(0)?;
                Ok((id.clone(), id))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(paged(ids, page.limit))
    }

    pub(super) fn changes_after(&self, user_id: &str, after: u64, limit: usize) -> Result<ChangeWindow, StoreError> {
        let mut conn = self.reader();
        // One read transaction: the head and the changes come from the same snapshot.
        let tx = conn.transaction().map_err(backend)?;
        let head: i64 = tx
            .row("SELECT kv_seq FROM users WHERE user_id = ?1", [user_id], |r| r.get(0))
            .optional()
            .map_err(backend)?
            .unwrap_or(0);
        let changes = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, collection, id, sealed, plain_json, plain_mac FROM kv_changes
                     WHERE user_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(backend)?;
            stmt.query_map(params![user_id, int(after), int(limit as u64)], |r| {
                Ok(Change { seq: uint(r.get(0)?), collection: r.get(1)?, id: r.get(2)?, value: value_from_row(r, 3)? })
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?
        };
        tx.commit().map_err(backend)?;
        Ok(ChangeWindow { head: uint(head), floor: uint(head).saturating_sub(self.retain), changes })
    }

    pub(super) fn kv_legacy(&self, user_id: &str, limit: usize) -> Result<Vec<LegacyKey>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT collection, id, sealed, plain_json, plain_mac FROM kv
             WHERE user_id = ?1 AND legacy_name = 1 ORDER BY collection, id LIMIT ?2",
        )?;
        // Stepped one row at a time: no value past the page's end is read but the
        // one that did not fit.
        let mut rows = stmt.query(params![user_id, int(limit as u64)])?;
        let mut page = LegacyPage::new(limit);
        while let Some(r) = rows.next()? {
            // A row without a readable value is no key (as kv_get answers it).
            let Some(value) = value_from_row(r, 2)? else { continue };
            if !page.push(LegacyKey { collection: r.get(0)?, id: r.get(1)?, value }) {
                break;
            }
        }
        Ok(page.into_keys())
    }

    pub(super) fn kv_rename(&self, user_id: &str, renames: &[KvRename]) -> Result<KvRenameResponse, StoreError> {
        let (user_id, renames) = (user_id.to_owned(), renames.to_vec());
        self.write(move |tx| {
            let mut answer = KvRenameResponse { renamed: 0, dropped: 0 };
            // Nothing legacy, nothing to look up: the writer is free again at once.
            let any_legacy: bool =
                tx.row("SELECT EXISTS (SELECT 1 FROM kv WHERE user_id = ?1 AND legacy_name = 1)", [&user_id], |r| {
                    r.get(0)
                })?;
            if !any_legacy {
                return Ok(answer);
            }
            let mut delta = 0i64;
            for rename in &renames {
                let found = legacy_and_target(tx, &user_id, rename)?;
                let (step, bytes) = RenameStep::of(rename, found.as_ref());
                rename_step(tx, &user_id, rename, step)?;
                delta = delta.saturating_add(bytes);
                step.count(&mut answer);
            }
            // Never refused: a migration must not fail on the allowance.
            charge(tx, &user_id, delta, u64::MAX)?;
            Ok(answer)
        })
    }
}

#[async_trait]
impl Kv for SqliteRecords {
    async fn kv_get(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<StoredValue>, StoreError> {
        let (user_id, collection, id) = (user_id.to_owned(), collection.to_owned(), id.to_owned());
        self.run(move |db| db.kv_get(&user_id, &collection, &id)).await
    }

    async fn kv_set(
        &self,
        user_id: &str,
        collection: &str,
        id: &str,
        value: &StoredValue,
        allowance: u64,
    ) -> Result<u64, StoreError> {
        let (user_id, collection, id, value) =
            (user_id.to_owned(), collection.to_owned(), id.to_owned(), value.clone());
        self.run(move |db| db.kv_set(&user_id, &collection, &id, &value, allowance)).await
    }

    async fn kv_delete(&self, user_id: &str, collection: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let (user_id, collection, id) = (user_id.to_owned(), collection.to_owned(), id.to_owned());
        self.run(move |db| db.kv_delete(&user_id, &collection, &id)).await
    }

    async fn kv_list(&self, user_id: &str, collection: &str, page: &PageRequest) -> Result<Page<String>, StoreError> {
        let (user_id, collection, page) = (user_id.to_owned(), collection.to_owned(), page.clone());
        self.run(move |db| db.kv_list(&user_id, &collection, &page)).await
    }

    async fn changes_after(&self, user_id: &str, after: u64, limit: usize) -> Result<ChangeWindow, StoreError> {
        let user_id = user_id.to_owned();
        self.run(move |db| db.changes_after(&user_id, after, limit)).await
    }

    async fn kv_legacy(&self, user_id: &str, limit: usize) -> Result<Vec<LegacyKey>, StoreError> {
        let user_id = user_id.to_owned();
        self.run(move |db| db.kv_legacy(&user_id, limit)).await
    }

    async fn kv_rename(&self, user_id: &str, renames: &[KvRename]) -> Result<KvRenameResponse, StoreError> {
        let (user_id, renames) = (user_id.to_owned(), renames.to_vec());
        self.run(move |db| db.kv_rename(&user_id, &renames)).await
    }
}
