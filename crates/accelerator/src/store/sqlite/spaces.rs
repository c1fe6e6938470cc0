//! Spaces, members and invites in SQLite. A member's roster entry is entered with
//! their membership; leaving and removal make a rotation due ([`super::space_keys`]).

use super::*;

/// Reads a role stored as its wire name.
pub(super) fn role_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Role> {
    let text: String = row.get(at)?;
    match text.as_str() {
        "reader" => Ok(Role::Reader),
        "writer" => Ok(Role::Writer),
        "owner" => Ok(Role::Owner),
        _ => Err(rusqlite::Error::FromSqlConversionFailure(at, Type::Text, format!("unknown role {text:?}").into())),
    }
}

/// `user_id`'s role in the space, if it is at least `needed`: [`StoreError::NotMember`]
/// for outsiders (and for spaces that do not exist), [`StoreError::RoleTooLow`] for
/// members below `needed`.
pub(super) fn require(conn: &Connection, space_id: &str, user_id: &str, needed: Role) -> Result<Role, StoreError> {
    let role = conn
        .row("SELECT role FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id], |r| {
            role_at(r, 0)
        })
        .optional()?;
    match role {
        None => Err(StoreError::NotMember),
        Some(role) if role < needed => Err(StoreError::RoleTooLow { needed }),
        Some(role) => Ok(role),
    }
}

/// The columns [`membership_from_row`] reads, of `members m JOIN spaces s`.
pub(super) const MEMBERSHIP_COLUMNS: &str =
    "s.space_id, s.sealed_name, m.role, s.created_at_ms, s.epoch, s.rotation_due, m.roster_mac IS NOT NULL";

/// `user_id`'s membership of the space, if any.
pub(super) fn membership(conn: &Connection, space_id: &str, user_id: &str) -> rusqlite::Result<Option<Membership>> {
    conn.row(
        &format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM members m JOIN spaces s ON s.space_id = m.space_id
             WHERE m.space_id = ?1 AND m.user_id = ?2"
        ),
        params![space_id, user_id],
        membership_from_row,
    )
    .optional()
}

pub(super) fn membership_from_row(row: &Row<'_>) -> rusqlite::Result<Membership> {
    Ok(Membership {
        space_id: row.get(0)?,
        sealed_name: row.get(1)?,
        role: role_at(row, 2)?,
        created_at_ms: uint(row.get(3)?),
        epoch: row.get(4)?,
        rotation_due: row.get(5)?,
        in_roster: row.get(6)?,
    })
}

/// `user_id`'s membership, which the caller's transaction just made or changed.
pub(super) fn membership_now(conn: &Connection, space_id: &str, user_id: &str) -> Result<Membership, StoreError> {
    membership(conn, space_id, user_id)?.ok_or_else(|| StoreError::Backend("member vanished".into()))
}

/// After a member went, with others left: a rotation is due, and every invite goes
/// (each hands out the key the member who went holds).
fn member_went(conn: &Connection, space_id: &str) -> Result<(), StoreError> {
    conn.exec("UPDATE spaces SET rotation_due = 1 WHERE space_id = ?1", [space_id])?;
    conn.exec("DELETE FROM invites WHERE space_id = ?1", [space_id])?;
    Ok(())
}

/// How many members, and how many owners, the space has.
pub(super) fn head_count(conn: &Connection, space_id: &str) -> rusqlite::Result<(u64, u64)> {
    conn.row(
        "SELECT count(*), count(*) FILTER (WHERE role = 'owner') FROM members WHERE space_id = ?1",
        [space_id],
        |r| Ok((uint(r.get(0)?), uint(r.get(1)?))),
    )
}

/// Bytes the space's committed files hold.
pub(super) fn space_used_bytes(conn: &Connection, space_id: &str) -> rusqlite::Result<u64> {
    conn.row(
        "SELECT coalesce(sum(stored_bytes), 0) FROM files WHERE space_id = ?1 AND state = 'live'",
        [space_id],
        |r| r.get(0).map(uint),
    )
}

impl Db {
    pub(super) fn create_space(
        &self,
        space_id: &str,
        sealed_name: &[u8],
        owner: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
        allowance: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, sealed_name, owner, roster_mac) =
            (space_id.to_owned(), sealed_name.to_owned(), owner.to_owned(), *roster_mac);
        self.write(move |tx| {
            let (space_id, sealed_name, owner) = (&space_id, &sealed_name, &owner);
            require_key(tx, owner)?;
            let taken = tx.row("SELECT 1 FROM spaces WHERE space_id = ?1", [space_id], |_| Ok(())).optional()?;
            if taken.is_some() {
                return Err(StoreError::SpaceTaken);
            }
            let cost = space_cost(sealed_name.len());
            charge(tx, owner, int(cost), allowance)?;
            tx.exec(
                "INSERT INTO spaces (space_id, sealed_name, created_at_ms, created_by, charged_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
                params![space_id, sealed_name, int(now_ms), owner, int(cost)],
            )?;
            tx.exec(
                "INSERT INTO members (space_id, user_id, role, joined_at_ms, roster_mac)
                 VALUES (?1, ?2, 'owner', ?3, ?4)",
                params![space_id, owner, int(now_ms), roster_mac],
            )?;
            membership_now(tx, space_id, owner)
        })
    }

    pub(super) fn spaces_of(&self, user_id: &str, page: &PageRequest) -> Result<Page<Membership>, StoreError> {
        let (ms, rowid) = position(page)?;
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {MEMBERSHIP_COLUMNS}, s.rowid
             FROM members m JOIN spaces s ON s.space_id = m.space_id
             WHERE m.user_id = ?1 AND (s.created_at_ms, s.rowid) > (?2, ?3)
             ORDER BY s.created_at_ms, s.rowid LIMIT ?4"
        ))?;
        let spaces = stmt
            .query_map(params![user_id, ms, rowid, int(page.limit as u64 + 1)], |r| {
                Ok((membership_from_row(r)?, cursor_at(r, 3, 7)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(paged(spaces, page.limit))
    }

    pub(super) fn create_invite(
        &self,
        actor: &str,
        invite: &Invite,
        epoch: u32,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (actor, invite) = (actor.to_owned(), invite.to_owned());
        self.write(move |tx| {
            let (actor, invite) = (&actor, &invite);
            require(tx, &invite.space_id, actor, Role::Owner)?;
            require_epoch(tx, &invite.space_id, epoch)?;
            tx.exec(
                "DELETE FROM invites WHERE space_id = ?1 AND expires_at_ms <= ?2",
                params![invite.space_id, int(now_ms)],
            )?;
            let live: i64 = tx.row(
                "SELECT count(*) FROM invites WHERE space_id = ?1 AND secret_hash <> ?2",
                params![invite.space_id, invite.secret_hash],
                |r| r.get(0),
            )?;
            if uint(live) >= MAX_LIVE_INVITES {
                return Err(StoreError::TooManyInvites { max: MAX_LIVE_INVITES });
            }
            // The same secret registered again replaces the invite (its uses start over).
            tx.exec(
                "INSERT INTO invites (space_id, secret_hash, role, expires_at_ms, max_uses, uses, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
             ON CONFLICT (space_id, secret_hash) DO UPDATE SET role = excluded.role,
                 expires_at_ms = excluded.expires_at_ms, max_uses = excluded.max_uses, uses = 0,
                 created_by = excluded.created_by",
                params![
                    invite.space_id,
                    invite.secret_hash,
                    role_name(invite.role),
                    int(invite.expires_at_ms),
                    invite.max_uses,
                    actor
                ],
            )?;
            Ok(())
        })
    }

    pub(super) fn join_space(
        &self,
        space_id: &str,
        secret_hash: &[u8; 32],
        user_id: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, secret_hash, user_id, roster_mac) =
            (space_id.to_owned(), secret_hash.to_owned(), user_id.to_owned(), *roster_mac);
        self.write(move |tx| {
            let (space_id, secret_hash, user_id) = (&space_id, &secret_hash, &user_id);
            require_key(tx, user_id)?;
            // Found by the hash of the presented secret: the index compares hashes, which
            // tells a guesser nothing about any secret.
            let invite = tx
                .row(
                    "SELECT role, expires_at_ms, max_uses, uses FROM invites WHERE space_id = ?1 AND secret_hash = ?2",
                    params![space_id, secret_hash],
                    |r| Ok((role_at(r, 0)?, uint(r.get(1)?), uint(r.get(2)?), uint(r.get(3)?))),
                )
                .optional()?;
            let (role, expires_at_ms, max_uses, uses) = invite.ok_or(StoreError::InviteInvalid)?;
            // A member again: a new roster entry under the invite's key (every
            // invite there is carries the current epoch's), the sealed key kept.
            let entered = tx.exec(
                "UPDATE members SET roster_mac = ?3 WHERE space_id = ?1 AND user_id = ?2",
                params![space_id, user_id, roster_mac],
            )?;
            if entered > 0 {
                return membership_now(tx, space_id, user_id);
            }
            if now_ms >= expires_at_ms {
                return Err(StoreError::InviteExpired);
            }
            if uses >= max_uses {
                return Err(StoreError::InviteUsedUp);
            }
            tx.exec(
                "UPDATE invites SET uses = uses + 1 WHERE space_id = ?1 AND secret_hash = ?2",
                params![space_id, secret_hash],
            )?;
            tx.exec(
                "INSERT INTO members (space_id, user_id, role, joined_at_ms, roster_mac) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![space_id, user_id, role_name(role), int(now_ms), roster_mac],
            )?;
            membership_now(tx, space_id, user_id)
        })
    }

    pub(super) fn members(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<Member>, StoreError> {
        let (ms, rowid) = position(page)?;
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let members = {
            let mut stmt = tx.prepare_cached(
                "SELECT m.user_id, u.username, m.role, m.joined_at_ms, u.user_public_key, m.roster_mac, m.rowid
                 FROM members m JOIN users u ON u.user_id = m.user_id
                 WHERE m.space_id = ?1 AND (m.joined_at_ms, m.rowid) > (?2, ?3)
                 ORDER BY m.joined_at_ms, m.rowid LIMIT ?4",
            )?;
            stmt.query_map(params![space_id, ms, rowid, int(page.limit as u64 + 1)], |r| {
                let member = Member {
                    user_id: r.get(0)?,
                    username: r.get(1)?,
                    role: role_at(r, 2)?,
                    joined_at_ms: uint(r.get(3)?),
                    public_key: r.get::<_, Option<Vec<u8>>>(4)?.map(b64::encode),
                    roster_mac: r.get::<_, Option<Vec<u8>>>(5)?.map(b64::encode),
                };
                Ok((member, cursor_at(r, 3, 6)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(paged(members, page.limit))
    }

    pub(super) fn leave_space(&self, space_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let (space_id, user_id) = (space_id.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let (space_id, user_id) = (&space_id, &user_id);
            let role = require(tx, space_id, user_id, Role::Reader)?;
            let (members, owners) = head_count(tx, space_id)?;
            if members > 1 && role == Role::Owner && owners == 1 {
                return Err(StoreError::LastOwner);
            }
            tx.exec("DELETE FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id])?;
            if members == 1 {
                // The last member: the space goes, at once for everyone (no member is
                // left to reach it) and a step at a time for its files (Records::unwind).
                let (payer, bytes) = tx.row(
                    "UPDATE spaces SET gone = 1 WHERE space_id = ?1 RETURNING created_by, charged_bytes",
                    [space_id],
                    |r| Ok((r.get::<_, String>(0)?, uint(r.get(1)?))),
                )?;
                refund(tx, &payer, bytes)?;
                tx.exec("DELETE FROM invites WHERE space_id = ?1", [space_id])?;
            } else {
                member_went(tx, space_id)?;
            }
            Ok(members == 1)
        })
    }

    pub(super) fn remove_member(&self, space_id: &str, actor: &str, user_id: &str) -> Result<(), StoreError> {
        let (space_id, actor, user_id) = (space_id.to_owned(), actor.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let (space_id, actor, user_id) = (&space_id, &actor, &user_id);
            require(tx, space_id, actor, Role::Owner)?;
            let role = tx
                .row("SELECT role FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id], |r| {
                    role_at(r, 0)
                })
                .optional()?
                .ok_or(StoreError::NoSuchMember)?;
            if role == Role::Owner && head_count(tx, space_id)?.1 == 1 {
                return Err(StoreError::LastOwner);
            }
            tx.exec("DELETE FROM members WHERE space_id = ?1 AND user_id = ?2", params![space_id, user_id])?;
            member_went(tx, space_id)
        })
    }

    pub(super) fn space_usage(&self, space_id: &str, actor: &str) -> Result<u64, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let used = space_used_bytes(&tx, space_id)?;
        tx.commit()?;
        Ok(used)
    }
}

#[async_trait]
impl Spaces for SqliteRecords {
    async fn create_space(
        &self,
        space_id: &str,
        sealed_name: &[u8],
        owner: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
        allowance: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, sealed_name, owner, roster_mac) =
            (space_id.to_owned(), sealed_name.to_vec(), owner.to_owned(), *roster_mac);
        self.run(move |db| db.create_space(&space_id, &sealed_name, &owner, &roster_mac, now_ms, allowance)).await
    }

    async fn spaces_of(&self, user_id: &str, page: &PageRequest) -> Result<Page<Membership>, StoreError> {
        let (user_id, page) = (user_id.to_owned(), page.clone());
        self.run(move |db| db.spaces_of(&user_id, &page)).await
    }

    async fn create_invite(&self, actor: &str, invite: &Invite, epoch: u32, now_ms: u64) -> Result<(), StoreError> {
        let (actor, invite) = (actor.to_owned(), invite.clone());
        self.run(move |db| db.create_invite(&actor, &invite, epoch, now_ms)).await
    }

    async fn join_space(
        &self,
        space_id: &str,
        secret_hash: &[u8; 32],
        user_id: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, secret_hash, user_id, roster_mac) =
            (space_id.to_owned(), *secret_hash, user_id.to_owned(), *roster_mac);
        self.run(move |db| db.join_space(&space_id, &secret_hash, &user_id, &roster_mac, now_ms)).await
    }

    async fn members(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<Member>, StoreError> {
        let (space_id, actor, page) = (space_id.to_owned(), actor.to_owned(), page.clone());
        self.run(move |db| db.members(&space_id, &actor, &page)).await
    }

    async fn leave_space(&self, space_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let (space_id, user_id) = (space_id.to_owned(), user_id.to_owned());
        self.run(move |db| db.leave_space(&space_id, &user_id)).await
    }

    async fn remove_member(&self, space_id: &str, actor: &str, user_id: &str) -> Result<(), StoreError> {
        let (space_id, actor, user_id) = (space_id.to_owned(), actor.to_owned(), user_id.to_owned());
        self.run(move |db| db.remove_member(&space_id, &actor, &user_id)).await
    }

    async fn space_usage(&self, space_id: &str, actor: &str) -> Result<u64, StoreError> {
        let (space_id, actor) = (space_id.to_owned(), actor.to_owned());
        self.run(move |db| db.space_usage(&space_id, &actor)).await
    }
}
