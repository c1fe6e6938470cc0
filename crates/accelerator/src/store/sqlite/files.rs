//! Shard records, uploads, files and their references in SQLite: commits in steps
//! into an invisible draft, deletes withdrawn at once and taken apart in steps.

use super::*;

/// Moves an upload's deadline (never earlier); changes no row if there is no such
/// upload. Parameters: user id, address, new deadline.
pub(super) const MOVE_DEADLINE: &str =
    "UPDATE uploads SET expires_at_ms = max(expires_at_ms, ?3) WHERE user_id = ?1 AND address = ?2";

/// Withdraws files of a space that are not gone yet — `file_id`, or up to `limit`
/// of any — refunding whoever paid for them. Returns how many it withdrew.
pub(super) fn withdraw_files(
    tx: &Connection,
    space_id: &str,
    file_id: Option<&str>,
    limit: usize,
) -> Result<usize, StoreError> {
    let payers = {
        let mut stmt = match file_id {
            Some(_) => tx.prepare_cached(
                "UPDATE files SET state = 'gone' WHERE space_id = ?1 AND file_id = ?2 AND state <> 'gone' AND ?3 > 0
                 RETURNING created_by, charged_bytes",
            )?,
            None => tx.prepare_cached(
                "UPDATE files SET state = 'gone' WHERE rowid IN
                    (SELECT rowid FROM files WHERE space_id = ?1 AND state <> 'gone' LIMIT ?3)
                 RETURNING created_by, charged_bytes",
            )?,
        };
        let rows = stmt.query_map(params![space_id, file_id, int(limit as u64)], |r| {
            Ok((r.get::<_, String>(0)?, uint(r.get(1)?)))
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for (payer, bytes) in &payers {
        refund(tx, payer, *bytes)?;
    }
    Ok(payers.len())
}

/// Drops up to `limit` references held by files of a space — `file_id`'s, or any —
/// which must all be gone. Returns how many it dropped, and the shards no file
/// references any more.
pub(super) fn drop_references(
    tx: &Connection,
    space_id: &str,
    file_id: Option<&str>,
    limit: usize,
) -> Result<(usize, Vec<ShardAddress>), StoreError> {
    let addresses = {
        let mut stmt = match file_id {
            Some(_) => tx.prepare_cached(
                "DELETE FROM file_shards WHERE space_id = ?1 AND file_id = ?2 AND address IN
                    (SELECT address FROM file_shards WHERE space_id = ?1 AND file_id = ?2 LIMIT ?3)
                 RETURNING address",
            )?,
            None => tx.prepare_cached(
                "DELETE FROM file_shards WHERE (space_id, file_id, address) IN
                    (SELECT space_id, file_id, address FROM file_shards WHERE space_id = ?1 LIMIT ?3)
                 RETURNING address",
            )?,
        };
        let rows = stmt.query_map(params![space_id, file_id, int(limit as u64)], |r| r.get::<_, [u8; 32]>(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    Ok((addresses.len(), unreferenced(tx, addresses)?))
}

/// Of these addresses, those that no committed file references.
pub(super) fn unreferenced(conn: &Connection, addresses: Vec<[u8; 32]>) -> rusqlite::Result<Vec<ShardAddress>> {
    let mut stmt = conn.prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM file_shards WHERE address = ?1)")?;
    let mut free = Vec::new();
    for address in addresses {
        if stmt.query_row([address], |r| r.get::<_, bool>(0))? {
            free.push(ShardAddress::from_bytes(address));
        }
    }
    Ok(free)
}

/// What [`list_shards`] found.
pub(super) struct Listed {
    /// Bytes the listed shards hold.
    stored_bytes: u64,
    /// Bytes of the writer's own pending uploads among them.
    settled_bytes: u64,
}

/// Puts `shards` (distinct) in the connection's `temp.listed`, and checks with one
/// set query over it that each is stored and is either `file`'s creator's own
/// pending upload or already used by a live file of the same space. A shard someone
/// else uploaded counts as missing to this writer: they upload it too (and pay for
/// it), so no one pins another's shards by naming them.
pub(super) fn list_shards(conn: &Connection, file: &NewFile, shards: &[ShardAddress]) -> Result<Listed, StoreError> {
    conn.exec("CREATE TEMP TABLE IF NOT EXISTS listed (address BLOB PRIMARY KEY) WITHOUT ROWID", [])?;
    conn.exec("DELETE FROM temp.listed", [])?;
    {
        let mut stmt = conn.prepare_cached("INSERT OR IGNORE INTO temp.listed (address) VALUES (?1)")?;
        for address in shards {
            stmt.execute([address.as_bytes()])?;
        }
    }
    let (listed, stored, stored_bytes, not_theirs, settled): (i64, i64, i64, i64, i64) = conn.row(
        "SELECT count(*), count(s.address), coalesce(sum(s.size), 0),
                count(*) FILTER (WHERE s.address IS NOT NULL AND u.address IS NULL
                    AND NOT EXISTS (SELECT 1 FROM file_shards f JOIN files x
                                    ON x.space_id = f.space_id AND x.file_id = f.file_id
                                    WHERE f.address = l.address AND f.space_id = ?2 AND x.state = 'live')),
                coalesce(sum(u.size), 0)
         FROM temp.listed l LEFT JOIN shards s ON s.address = l.address
         LEFT JOIN uploads u ON u.user_id = ?1 AND u.address = l.address",
        params![file.created_by, file.space_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    let missing = (uint(listed - stored) + uint(not_theirs)) as usize;
    if missing > 0 {
        return Err(StoreError::MissingShards { missing, listed: file.shards.len() });
    }
    Ok(Listed { stored_bytes: uint(stored_bytes), settled_bytes: uint(settled) })
}

/// Refuses a file whose id is used in its space.
pub(super) fn file_id_free(conn: &Connection, file: &NewFile) -> Result<(), StoreError> {
    let taken = conn
        .row("SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2", params![file.space_id, file.file_id], |_| {
            Ok(())
        })
        .optional()?;
    match taken {
        Some(()) => Err(StoreError::FileTaken),
        None => Ok(()),
    }
}

/// Refuses a file whose shards hold `stored_bytes` if the space, or its creator
/// (who has `settled_bytes` of them as pending uploads already charged), would go
/// past `quotas`.
pub(super) fn fits(
    conn: &Connection,
    file: &NewFile,
    stored_bytes: u64,
    settled_bytes: u64,
    quotas: Quotas,
) -> Result<(), StoreError> {
    if stored_bytes > file.max_shard_bytes {
        return Err(StoreError::OverDeclared { stored: stored_bytes, bound: file.max_shard_bytes });
    }
    let used = space_used_bytes(conn, &file.space_id)?;
    if used.saturating_add(stored_bytes) > quotas.space_bytes {
        return Err(StoreError::QuotaExceeded {
            limit: Quota::Space,
            used,
            adding: stored_bytes,
            quota: quotas.space_bytes,
        });
    }
    let cost = file_cost(stored_bytes, file.shards.len(), file.sealed_record.len());
    let used: i64 = conn.row("SELECT used_bytes FROM users WHERE user_id = ?1", [&file.created_by], |r| r.get(0))?;
    let adding = cost.saturating_sub(settled_bytes);
    if uint(used).saturating_add(adding) > quotas.user_bytes {
        return Err(StoreError::QuotaExceeded {
            limit: Quota::User,
            used: uint(used),
            adding,
            quota: quotas.user_bytes,
        });
    }
    Ok(())
}

/// One step of a commit ([`Files::draft_file`]) in the caller's transaction.
pub(super) fn draft_step(
    tx: &Connection,
    file: &NewFile,
    range: Range<usize>,
    expires_at_ms: u64,
) -> Result<(), StoreError> {
    let slice = file.shards.get(range.clone()).ok_or(StoreError::Backend("a step past the list".into()))?;
    require(tx, &file.space_id, &file.created_by, Role::Writer)?;
    require_epoch(tx, &file.space_id, file.epoch)?;
    if range.start == 0 {
        file_id_free(tx, file)?;
        tx.exec(
            &format!(
                "INSERT INTO files ({FILE_COLUMNS}, charged_bytes, state, expires_at_ms)
                 VALUES (?1, ?2, x'', 0, ?3, ?4, ?6, 0, 'draft', ?5)"
            ),
            params![
                file.space_id,
                file.file_id,
                file.created_by,
                int(file.created_at_ms),
                int(expires_at_ms),
                file.epoch
            ],
        )?;
    }
    let drafted = tx
        .row(
            "SELECT stored_bytes FROM files
             WHERE space_id = ?1 AND file_id = ?2 AND state = 'draft' AND created_by = ?3",
            params![file.space_id, file.file_id, file.created_by],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .ok_or(StoreError::CommitWithdrawn)?;
    // Presence is checked here, inside the transaction that adds the references:
    // a shard collected a moment ago is missing now, and one present now cannot
    // be collected once this commits (see crate::gc).
    let listed = list_shards(tx, file, slice)?;
    let stored_bytes = uint(drafted).saturating_add(listed.stored_bytes);
    if stored_bytes > file.max_shard_bytes {
        return Err(StoreError::OverDeclared { stored: stored_bytes, bound: file.max_shard_bytes });
    }
    // The writer's uploads of these shards are settled into the draft: their
    // charge moves to it.
    let settled = int(listed.settled_bytes);
    let listed = int(slice.len() as u64);
    tx.exec(
        "DELETE FROM uploads WHERE user_id = ?1 AND address IN (SELECT address FROM temp.listed)",
        [&file.created_by],
    )?;
    tx.exec(
        "INSERT INTO file_shards (space_id, file_id, address) SELECT ?1, ?2, address FROM temp.listed",
        params![file.space_id, file.file_id],
    )?;
    tx.exec(
        "UPDATE files SET stored_bytes = ?3, charged_bytes = charged_bytes + ?4,
                          shard_count = shard_count + ?5, expires_at_ms = ?6
         WHERE space_id = ?1 AND file_id = ?2",
        params![file.space_id, file.file_id, int(stored_bytes), settled, listed, int(expires_at_ms)],
    )?;
    tx.exec("DELETE FROM temp.listed", [])?;
    Ok(())
}

/// The last step of a commit ([`Files::seal_draft`]) in the caller's transaction.
pub(super) fn seal(tx: &Connection, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
    require(tx, &file.space_id, &file.created_by, Role::Writer)?;
    // A rotation between the steps: the record is sealed under a replaced key.
    require_epoch(tx, &file.space_id, file.epoch)?;
    let (stored_bytes, settled, count) = tx
        .row(
            "SELECT stored_bytes, charged_bytes, shard_count FROM files
             WHERE space_id = ?1 AND file_id = ?2 AND state = 'draft' AND created_by = ?3",
            params![file.space_id, file.file_id, file.created_by],
            |r| Ok((uint(r.get(0)?), r.get::<_, i64>(1)?, uint(r.get(2)?))),
        )
        .optional()?
        .ok_or(StoreError::CommitWithdrawn)?;
    if count != file.shards.len() as u64 {
        return Err(StoreError::Backend(format!("a draft of {count} shards sealed as {}", file.shards.len())));
    }
    fits(tx, file, stored_bytes, uint(settled), quotas)?;
    let charged = file_cost(stored_bytes, file.shards.len(), file.sealed_record.len());
    charge(tx, &file.created_by, int(charged) - settled, u64::MAX)?;
    tx.exec(
        "UPDATE files SET state = 'live', sealed_record = ?3, charged_bytes = ?4, created_at_ms = ?5, expires_at_ms = 0
         WHERE space_id = ?1 AND file_id = ?2",
        params![file.space_id, file.file_id, file.sealed_record, int(charged), int(file.created_at_ms)],
    )?;
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

pub(super) const FILE_COLUMNS: &str =
    "space_id, file_id, sealed_record, stored_bytes, created_by, created_at_ms, epoch";

pub(super) fn file_from_row(row: &Row<'_>) -> rusqlite::Result<FileRecord> {
    Ok(FileRecord {
        space_id: row.get(0)?,
        file_id: row.get(1)?,
        sealed_record: row.get(2)?,
        stored_bytes: uint(row.get(3)?),
        created_by: row.get(4)?,
        created_at_ms: uint(row.get(5)?),
        epoch: row.get(6)?,
    })
}

impl Db {
    pub(super) fn record_upload(
        &self,
        user_id: &str,
        address: &ShardAddress,
        size: u64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let (user_id, address) = (user_id.to_owned(), address.to_owned());
        self.write(move |tx| {
            let (user_id, address) = (&user_id, &address);
            tx.exec(
                "INSERT INTO shards (address, size, stored_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (address) DO UPDATE
             SET size = excluded.size, stored_at_ms = max(stored_at_ms, excluded.stored_at_ms)",
                params![address.as_bytes(), int(size), int(now_ms)],
            )?;
            let moved = tx.exec(MOVE_DEADLINE, params![user_id, address.as_bytes(), int(expires_at_ms)])?;
            if moved == 0 {
                tx.exec(
                    "INSERT INTO uploads (user_id, address, size, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![user_id, address.as_bytes(), int(size), int(expires_at_ms)],
                )?;
                // Checked before the bytes were written (crate::gc); recorded whatever now.
                charge(tx, user_id, int(size), u64::MAX)?;
            }
            Ok(())
        })
    }

    pub(super) fn touch_uploads(
        &self,
        user_id: &str,
        addresses: &[ShardAddress],
        expires_at_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let (user_id, addresses) = (user_id.to_owned(), addresses.to_owned());
        self.write(move |tx| {
            let (user_id, addresses) = (&user_id, &addresses);
            let present = {
                let mut stmt = tx.prepare_cached(MOVE_DEADLINE)?;
                addresses
                    .iter()
                    .map(|a| stmt.execute(params![user_id, a.as_bytes(), int(expires_at_ms)]).map(|n| n > 0))
                    .collect::<rusqlite::Result<Vec<bool>>>()?
            };
            Ok(present)
        })
    }

    pub(super) fn expire_uploads(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.write(move |tx| {
            let expired = {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM uploads WHERE (user_id, address) IN
                   (SELECT user_id, address FROM uploads WHERE expires_at_ms <= ?1 LIMIT ?2)
                 RETURNING user_id, size",
                )?;
                stmt.query_map(params![int(now_ms), int(limit as u64)], |r| {
                    Ok((r.get::<_, String>(0)?, uint(r.get(1)?)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            for (user_id, size) in &expired {
                refund(tx, user_id, *size)?;
            }
            Ok(expired.len())
        })
    }

    pub(super) fn shard_recorded(&self, address: &ShardAddress) -> Result<bool, StoreError> {
        let found = self
            .reader()
            .query_row("SELECT 1 FROM shards WHERE address = ?1", [address.as_bytes()], |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }

    pub(super) fn collectable_shards(
        &self,
        stored_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<ShardAddress>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT address FROM shards s
             WHERE stored_at_ms < ?1 AND NOT EXISTS (SELECT 1 FROM file_shards f WHERE f.address = s.address)
             AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.address = s.address)
             ORDER BY stored_at_ms LIMIT ?2",
        )?;
        let found = stmt
            .query_map(params![int(stored_before_ms), int(limit as u64)], |r| {
                r.get::<_, [u8; 32]>(0).map(ShardAddress::from_bytes)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(found)
    }

    pub(super) fn forget_shards(
        &self,
        addresses: &[ShardAddress],
        stored_before_ms: u64,
    ) -> Result<Vec<ShardAddress>, StoreError> {
        let addresses = addresses.to_owned();
        self.write(move |tx| {
            let addresses = &addresses;
            let mut dropped = Vec::new();
            {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM shards WHERE address = ?1 AND stored_at_ms < ?2
                 AND NOT EXISTS (SELECT 1 FROM file_shards WHERE address = ?1)
                 AND NOT EXISTS (SELECT 1 FROM uploads WHERE address = ?1)",
                )?;
                for address in addresses {
                    if stmt.execute(params![address.as_bytes(), int(stored_before_ms)])? > 0 {
                        dropped.push(*address);
                    }
                }
            }
            Ok(dropped)
        })
    }

    pub(super) fn check_commit(&self, file: &NewFile, quotas: Quotas) -> Result<(), StoreError> {
        let mut conn = self.checker.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = conn.transaction()?;
        require(&tx, &file.space_id, &file.created_by, Role::Writer)?;
        require_epoch(&tx, &file.space_id, file.epoch)?;
        file_id_free(&tx, file)?;
        let listed = list_shards(&tx, file, &file.shards)?;
        fits(&tx, file, listed.stored_bytes, listed.settled_bytes, quotas)?;
        tx.exec("DELETE FROM temp.listed", [])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn commit_whole(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        let file = file.to_owned();
        self.write(move |tx| {
            draft_step(tx, &file, 0..file.shards.len(), 0)?;
            seal(tx, &file, quotas)
        })
    }

    pub(super) fn draft_file(&self, file: &NewFile, range: Range<usize>, expires_at_ms: u64) -> Result<(), StoreError> {
        // Cheap: the list is shared, not copied.
        let file = file.to_owned();
        self.write(move |tx| draft_step(tx, &file, range, expires_at_ms))
    }

    pub(super) fn seal_draft(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        let file = file.to_owned();
        self.write(move |tx| seal(tx, &file, quotas))
    }

    pub(super) fn abandon_draft(&self, space_id: &str, file_id: &str, creator: &str) -> Result<(), StoreError> {
        let (space_id, file_id, creator) = (space_id.to_owned(), file_id.to_owned(), creator.to_owned());
        self.write(move |tx| {
            let (space_id, file_id, creator) = (&space_id, &file_id, &creator);
            let draft = tx
                .row(
                    "SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'draft' AND created_by = ?3",
                    params![space_id, file_id, creator],
                    |_| Ok(()),
                )
                .optional()?;
            if draft.is_some() {
                withdraw_files(tx, space_id, Some(file_id), 1)?;
            }
            Ok(())
        })
    }

    pub(super) fn unwind(&self, what: &Withdrawn, limit: usize) -> Result<Unwound, StoreError> {
        let limit = limit.max(1);
        let what = what.to_owned();
        self.write(move |tx| {
            let what = &what;
            let unwound = match what {
                Withdrawn::File { space_id, file_id } => {
                    let gone = tx
                        .row(
                            "SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'gone'",
                            params![space_id, file_id],
                            |_| Ok(()),
                        )
                        .optional()?;
                    if gone.is_none() {
                        return Ok(Unwound { freed: Vec::new(), done: true });
                    }
                    let (dropped, freed) = drop_references(tx, space_id, Some(file_id), limit)?;
                    let done = dropped < limit && {
                        tx.exec(
                            "DELETE FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'gone'
                                AND NOT EXISTS (SELECT 1 FROM file_shards WHERE space_id = ?1 AND file_id = ?2)",
                            params![space_id, file_id],
                        )? > 0
                    };
                    Unwound { freed, done }
                }
                Withdrawn::Space { space_id } => {
                    let gone = tx
                        .row("SELECT 1 FROM spaces WHERE space_id = ?1 AND gone = 1", [space_id], |_| Ok(()))
                        .optional()?;
                    if gone.is_none() {
                        return Ok(Unwound { freed: Vec::new(), done: true });
                    }
                    // First every file is withdrawn, then their references go, then the
                    // files, then the space.
                    if withdraw_files(tx, space_id, None, limit)? > 0 {
                        Unwound::default()
                    } else {
                        let (dropped, freed) = drop_references(tx, space_id, None, limit)?;
                        let done = dropped == 0
                        && tx.exec(
                            "DELETE FROM files WHERE rowid IN (SELECT rowid FROM files WHERE space_id = ?1 LIMIT ?2)",
                            params![space_id, int(limit as u64)],
                        )? == 0
                        && tx.exec("DELETE FROM spaces WHERE space_id = ?1", [space_id])? > 0;
                        Unwound { freed, done }
                    }
                }
            };
            Ok(unwound)
        })
    }

    pub(super) fn withdrawn(&self, now_ms: u64, limit: usize) -> Result<Vec<Withdrawn>, StoreError> {
        self.write(move |tx| {
            let expired = {
                let mut stmt = tx.prepare_cached(
                    "SELECT space_id, file_id FROM files WHERE state = 'draft' AND expires_at_ms <= ?1 LIMIT ?2",
                )?;
                stmt.query_map(params![int(now_ms), int(limit as u64)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            for (space_id, file_id) in &expired {
                withdraw_files(tx, space_id, Some(file_id), 1)?;
            }
            let mut found = {
                let mut stmt = tx.prepare_cached("SELECT space_id FROM spaces WHERE gone = 1 LIMIT ?1")?;
                stmt.query_map([int(limit as u64)], |r| Ok(Withdrawn::Space { space_id: r.get(0)? }))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT space_id, file_id FROM files WHERE state = 'gone'
                 AND NOT EXISTS (SELECT 1 FROM spaces s WHERE s.space_id = files.space_id AND s.gone = 1) LIMIT ?1",
                )?;
                let files = stmt.query_map([int(limit as u64)], |r| {
                    Ok(Withdrawn::File { space_id: r.get(0)?, file_id: r.get(1)? })
                })?;
                found.extend(files.collect::<rusqlite::Result<Vec<_>>>()?);
            }
            found.truncate(limit);
            Ok(found)
        })
    }

    pub(super) fn files(
        &self,
        space_id: &str,
        actor: &str,
        page: &PageRequest,
    ) -> Result<Page<FileRecord>, StoreError> {
        let (ms, rowid) = position(page)?;
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let files = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {FILE_COLUMNS}, rowid FROM files WHERE space_id = ?1 AND state = 'live'
                 AND (created_at_ms, rowid) > (?2, ?3)
                 ORDER BY created_at_ms, rowid LIMIT ?4"
            ))?;
            stmt.query_map(params![space_id, ms, rowid, int(page.limit as u64 + 1)], |r| {
                Ok((file_from_row(r)?, cursor_at(r, 5, 7)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(paged(files, page.limit))
    }

    pub(super) fn file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<Option<FileRecord>, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let file = tx
            .row(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'live'"),
                params![space_id, file_id],
                file_from_row,
            )
            .optional()?;
        tx.commit()?;
        Ok(file)
    }

    pub(super) fn delete_file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<bool, StoreError> {
        let (space_id, file_id, actor) = (space_id.to_owned(), file_id.to_owned(), actor.to_owned());
        self.write(move |tx| {
            let (space_id, file_id, actor) = (&space_id, &file_id, &actor);
            require(tx, space_id, actor, Role::Writer)?;
            let live = tx
                .row(
                    "SELECT 1 FROM files WHERE space_id = ?1 AND file_id = ?2 AND state = 'live'",
                    params![space_id, file_id],
                    |_| Ok(()),
                )
                .optional()?;
            if live.is_some() {
                withdraw_files(tx, space_id, Some(file_id), 1)?;
            }
            Ok(live.is_some())
        })
    }
}

#[async_trait]
impl Files for SqliteRecords {
    fn step(&self) -> usize {
        self.0.step
    }

    async fn hold_shards(&self, addresses: &[ShardAddress]) -> Result<ShardHold, StoreError> {
        Ok(self.0.holds.hold(addresses).await)
    }

    async fn record_upload(
        &self,
        user_id: &str,
        address: &ShardAddress,
        size: u64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let (user_id, address) = (user_id.to_owned(), *address);
        self.run(move |db| db.record_upload(&user_id, &address, size, now_ms, expires_at_ms)).await
    }

    async fn touch_uploads(
        &self,
        user_id: &str,
        addresses: &[ShardAddress],
        expires_at_ms: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let (user_id, addresses) = (user_id.to_owned(), addresses.to_vec());
        self.run(move |db| db.touch_uploads(&user_id, &addresses, expires_at_ms)).await
    }

    async fn expire_uploads(&self, now_ms: u64, limit: usize) -> Result<usize, StoreError> {
        self.run(move |db| db.expire_uploads(now_ms, limit)).await
    }

    async fn shard_recorded(&self, address: &ShardAddress) -> Result<bool, StoreError> {
        let address = *address;
        self.run(move |db| db.shard_recorded(&address)).await
    }

    async fn collectable_shards(&self, stored_before_ms: u64, limit: usize) -> Result<Vec<ShardAddress>, StoreError> {
        self.run(move |db| db.collectable_shards(stored_before_ms, limit)).await
    }

    async fn forget_shards(
        &self,
        addresses: &[ShardAddress],
        stored_before_ms: u64,
    ) -> Result<Vec<ShardAddress>, StoreError> {
        let addresses = addresses.to_vec();
        self.run(move |db| db.forget_shards(&addresses, stored_before_ms)).await
    }

    async fn check_commit(&self, file: &NewFile, quotas: Quotas) -> Result<(), StoreError> {
        let file = file.clone();
        self.run(move |db| db.check_commit(&file, quotas)).await
    }

    async fn commit_whole(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        let file = file.clone();
        self.run(move |db| db.commit_whole(&file, quotas)).await
    }

    async fn draft_file(&self, file: &NewFile, range: Range<usize>, expires_at_ms: u64) -> Result<(), StoreError> {
        let file = file.clone();
        self.run(move |db| db.draft_file(&file, range, expires_at_ms)).await
    }

    async fn seal_draft(&self, file: &NewFile, quotas: Quotas) -> Result<FileRecord, StoreError> {
        let file = file.clone();
        self.run(move |db| db.seal_draft(&file, quotas)).await
    }

    async fn abandon_draft(&self, space_id: &str, file_id: &str, creator: &str) -> Result<(), StoreError> {
        let (space_id, file_id, creator) = (space_id.to_owned(), file_id.to_owned(), creator.to_owned());
        self.run(move |db| db.abandon_draft(&space_id, &file_id, &creator)).await
    }

    async fn unwind(&self, what: &Withdrawn, limit: usize) -> Result<Unwound, StoreError> {
        let what = what.clone();
        self.run(move |db| db.unwind(&what, limit)).await
    }

    async fn withdrawn(&self, now_ms: u64, limit: usize) -> Result<Vec<Withdrawn>, StoreError> {
        self.run(move |db| db.withdrawn(now_ms, limit)).await
    }

    async fn files(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<FileRecord>, StoreError> {
        let (space_id, actor, page) = (space_id.to_owned(), actor.to_owned(), page.clone());
        self.run(move |db| db.files(&space_id, &actor, &page)).await
    }

    async fn file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<Option<FileRecord>, StoreError> {
        let (space_id, file_id, actor) = (space_id.to_owned(), file_id.to_owned(), actor.to_owned());
        self.run(move |db| db.file(&space_id, &file_id, &actor)).await
    }

    async fn delete_file(&self, space_id: &str, file_id: &str, actor: &str) -> Result<bool, StoreError> {
        let (space_id, file_id, actor) = (space_id.to_owned(), file_id.to_owned(), actor.to_owned());
        self.run(move |db| db.delete_file(&space_id, &file_id, &actor)).await
    }
}
