//! Spaces, their members and invites.
//!
//! Every change to a space's membership or invites locks the space's row first
//! ([`lock_space`]) and checks the actor's role after it has the lock, so two
//! owners on two accelerators cannot both remove the other, nor a removed member
//! slip a write in between the check and the write. A member's roster entry is
//! entered with their membership; leaving and removal make a rotation due
//! ([`super::space_keys`]).

use coffer_core::b64;
use coffer_core::proto::storage::{Member, Role};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::accounts::{charge, refund};
use super::space_keys::{require_epoch, require_key};
use super::{
    Failure, PgRecords, cursor_at, epoch_at, exec, int, one, page_rows, paged, position, retry, row, rows, snapshot,
    uint,
};
use crate::store::{Invite, Membership, Page, PageRequest, Spaces, StoreError, async_trait, role_name, space_cost};

/// Invites of one space that may be live (unexpired) at once (as SQLite's
/// [`crate::store::sqlite::MAX_LIVE_INVITES`]).
pub const MAX_LIVE_INVITES: u64 = crate::store::MAX_LIVE_INVITES;

/// How a transaction holds a space's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// `FOR SHARE`: the membership stays as it is until the commit, while others
    /// holding it this way go on beside.
    Shared,
    /// `FOR UPDATE`: nobody else changes the space, its members or its files'
    /// totals until the commit.
    Alone,
}

/// Locks the space's row until the transaction ends (a space that does not exist
/// locks nothing: the role check that follows refuses).
pub(crate) async fn lock_space(tx: &impl GenericClient, space_id: &str, hold: Hold) -> Result<(), Failure> {
    let sql = match hold {
        Hold::Shared => "SELECT 1 FROM spaces WHERE space_id = $1 FOR SHARE",
        Hold::Alone => "SELECT 1 FROM spaces WHERE space_id = $1 FOR UPDATE",
    };
    row(tx, sql, &[&space_id]).await?;
    Ok(())
}

/// Reads a role stored as its wire name.
pub(crate) fn role_at(row: &Row, at: usize) -> Result<Role, Failure> {
    let text: String = row.try_get(at)?;
    match text.as_str() {
        "reader" => Ok(Role::Reader),
        "writer" => Ok(Role::Writer),
        "owner" => Ok(Role::Owner),
        _ => Err(StoreError::Backend(format!("unknown role {text:?}")).into()),
    }
}

/// `user_id`'s role in the space, if it is at least `needed`: [`StoreError::NotMember`]
/// for outsiders (and for spaces that do not exist), [`StoreError::RoleTooLow`] for
/// members below `needed`.
pub(crate) async fn require(
    c: &impl GenericClient,
    space_id: &str,
    user_id: &str,
    needed: Role,
) -> Result<Role, Failure> {
    let found = row(c, "SELECT role FROM members WHERE space_id = $1 AND user_id = $2", &[&space_id, &user_id]).await?;
    let role = found.map(|r| role_at(&r, 0)).transpose()?;
    match role {
        None => Err(StoreError::NotMember.into()),
        Some(role) if role < needed => Err(StoreError::RoleTooLow { needed }.into()),
        Some(role) => Ok(role),
    }
}

/// The columns [`membership_from_row`] reads, of `members m JOIN spaces s`.
const MEMBERSHIP_COLUMNS: &str =
    "s.space_id, s.sealed_name, m.role, s.created_at_ms, s.epoch, s.rotation_due, m.roster_mac IS NOT NULL";

/// `user_id`'s membership of the space, if any.
async fn membership(c: &impl GenericClient, space_id: &str, user_id: &str) -> Result<Option<Membership>, Failure> {
    let found = row(
        c,
        &format!(
            "SELECT {MEMBERSHIP_COLUMNS} FROM members m JOIN spaces s ON s.space_id = m.space_id
             WHERE m.space_id = $1 AND m.user_id = $2"
        ),
        &[&space_id, &user_id],
    )
    .await?;
    found.map(|r| membership_from_row(&r)).transpose()
}

/// `user_id`'s membership, which the caller's transaction just made or changed.
pub(crate) async fn membership_now(
    c: &impl GenericClient,
    space_id: &str,
    user_id: &str,
) -> Result<Membership, Failure> {
    Ok(membership(c, space_id, user_id).await?.ok_or_else(|| StoreError::Backend("member vanished".into()))?)
}

fn membership_from_row(row: &Row) -> Result<Membership, Failure> {
    Ok(Membership {
        space_id: row.try_get(0)?,
        sealed_name: row.try_get(1)?,
        role: role_at(row, 2)?,
        created_at_ms: uint(row.try_get(3)?),
        epoch: epoch_at(row, 4)?,
        rotation_due: row.try_get(5)?,
        in_roster: row.try_get(6)?,
    })
}

/// After a member went, with others left: a rotation is due, and every invite goes
/// (each hands out the key the member who went holds).
async fn member_went(tx: &impl GenericClient, space_id: &str) -> Result<(), Failure> {
    exec(tx, "UPDATE spaces SET rotation_due = true WHERE space_id = $1", &[&space_id]).await?;
    exec(tx, "DELETE FROM invites WHERE space_id = $1", &[&space_id]).await?;
    Ok(())
}

/// How many members, and how many owners, the space has.
async fn head_count(c: &impl GenericClient, space_id: &str) -> Result<(u64, u64), Failure> {
    let counted = one(
        c,
        "SELECT count(*), count(*) FILTER (WHERE role = 'owner') FROM members WHERE space_id = $1",
        &[&space_id],
    )
    .await?;
    Ok((uint(counted.try_get(0)?), uint(counted.try_get(1)?)))
}

/// Bytes the space's committed files hold.
pub(crate) async fn space_used_bytes(c: &impl GenericClient, space_id: &str) -> Result<u64, Failure> {
    let used = one(
        c,
        "SELECT coalesce(sum(stored_bytes), 0)::bigint FROM files WHERE space_id = $1 AND state = 'live'",
        &[&space_id],
    )
    .await?;
    Ok(uint(used.try_get(0)?))
}

#[async_trait]
impl Spaces for PgRecords {
    /// Creates a space at epoch 0 with `owner` as its one member, with their roster
    /// entry, charging [`space_cost`] to them within `allowance`;
    /// [`StoreError::SpaceTaken`] if the id exists.
    async fn create_space(
        &self,
        space_id: &str,
        sealed_name: &[u8],
        owner: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
        allowance: u64,
    ) -> Result<Membership, StoreError> {
        let cost = space_cost(sealed_name.len());
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            require_key(&tx, owner).await?;
            // Of two creations of one id, the second waits here for the first and
            // then finds the id taken.
            let inserted = exec(
                &tx,
                "INSERT INTO spaces (space_id, sealed_name, created_at_ms, created_by, charged_bytes)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (space_id) DO NOTHING",
                &[&space_id, &sealed_name, &int(now_ms), &owner, &int(cost)],
            )
            .await?;
            if inserted == 0 {
                return Err(StoreError::SpaceTaken.into());
            }
            charge(&tx, owner, int(cost), allowance).await?;
            exec(
                &tx,
                "INSERT INTO members (space_id, user_id, role, joined_at_ms, roster_mac)
                 VALUES ($1, $2, 'owner', $3, $4)",
                &[&space_id, &owner, &int(now_ms), &roster_mac.as_slice()],
            )
            .await?;
            let member = membership_now(&tx, space_id, owner).await?;
            tx.commit().await?;
            Ok(member)
        })
        .await
    }

    /// The spaces `user_id` is a member of, oldest first.
    async fn spaces_of(&self, user_id: &str, page: &PageRequest) -> Result<Page<Membership>, StoreError> {
        let (ms, n) = position(page)?;
        retry(|| async move {
            let client = self.client().await?;
            let found = rows(
                &client,
                &format!(
                    "SELECT {MEMBERSHIP_COLUMNS}, s.n
                     FROM members m JOIN spaces s ON s.space_id = m.space_id
                     WHERE m.user_id = $1 AND (s.created_at_ms, s.n) > ($2, $3)
                     ORDER BY s.created_at_ms, s.n LIMIT $4"
                ),
                &[&user_id, &ms, &n, &page_rows(page)],
            )
            .await?;
            let spaces = found
                .iter()
                .map(|r| Ok((membership_from_row(r)?, cursor_at(r, 3, 7)?)))
                .collect::<Result<Vec<_>, Failure>>()?;
            Ok(paged(spaces, page.limit))
        })
        .await
    }

    /// Registers an invite made by `actor`, who must own the space, for a token that
    /// carries epoch `epoch`'s key: the current one, with no rotation due. Drops the
    /// space's expired invites.
    async fn create_invite(&self, actor: &str, invite: &Invite, epoch: u32, now_ms: u64) -> Result<(), StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, &invite.space_id, Hold::Alone).await?;
            require(&tx, &invite.space_id, actor, Role::Owner).await?;
            require_epoch(&tx, &invite.space_id, epoch).await?;
            exec(
                &tx,
                "DELETE FROM invites WHERE space_id = $1 AND expires_at_ms <= $2",
                &[&invite.space_id, &int(now_ms)],
            )
            .await?;
            let live: i64 = one(
                &tx,
                "SELECT count(*) FROM invites WHERE space_id = $1 AND secret_hash <> $2",
                &[&invite.space_id, &invite.secret_hash.as_slice()],
            )
            .await?
            .try_get(0)?;
            if uint(live) >= MAX_LIVE_INVITES {
                return Err(StoreError::TooManyInvites { max: MAX_LIVE_INVITES }.into());
            }
            // The same secret registered again replaces the invite (its uses start over).
            exec(
                &tx,
                "INSERT INTO invites (space_id, secret_hash, role, expires_at_ms, max_uses, uses, created_by)
                 VALUES ($1, $2, $3, $4, $5, 0, $6)
                 ON CONFLICT (space_id, secret_hash) DO UPDATE SET role = excluded.role,
                     expires_at_ms = excluded.expires_at_ms, max_uses = excluded.max_uses, uses = 0,
                     created_by = excluded.created_by",
                &[
                    &invite.space_id,
                    &invite.secret_hash.as_slice(),
                    &role_name(invite.role),
                    &int(invite.expires_at_ms),
                    &i64::from(invite.max_uses),
                    &actor,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Adds `user_id` to the space, with this roster entry, through the invite with
    /// this secret hash, using one of its uses. A user who is already a member gets
    /// their membership back with the roster entry replaced (their sealed key kept),
    /// and the invite is not used.
    async fn join_space(
        &self,
        space_id: &str,
        secret_hash: &[u8; 32],
        user_id: &str,
        roster_mac: &[u8; 32],
        now_ms: u64,
    ) -> Result<Membership, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            require_key(&tx, user_id).await?;
            // Joins through one invite take turns: its uses are counted exactly.
            lock_space(&tx, space_id, Hold::Alone).await?;
            // Found by the hash of the presented secret: the index compares hashes,
            // which tells a guesser nothing about any secret.
            let invite = row(
                &tx,
                "SELECT role, expires_at_ms, max_uses, uses FROM invites WHERE space_id = $1 AND secret_hash = $2",
                &[&space_id, &secret_hash.as_slice()],
            )
            .await?
            .ok_or(StoreError::InviteInvalid)?;
            let (role, expires_at_ms, max_uses, uses) =
                (role_at(&invite, 0)?, uint(invite.try_get(1)?), uint(invite.try_get(2)?), uint(invite.try_get(3)?));
            // A member again: a new roster entry under the invite's key (every
            // invite there is carries the current epoch's), the sealed key kept.
            let entered = exec(
                &tx,
                "UPDATE members SET roster_mac = $3 WHERE space_id = $1 AND user_id = $2",
                &[&space_id, &user_id, &roster_mac.as_slice()],
            )
            .await?;
            if entered > 0 {
                let member = membership_now(&tx, space_id, user_id).await?;
                tx.commit().await?;
                return Ok(member);
            }
            if now_ms >= expires_at_ms {
                return Err(StoreError::InviteExpired.into());
            }
            if uses >= max_uses {
                return Err(StoreError::InviteUsedUp.into());
            }
            exec(
                &tx,
                "UPDATE invites SET uses = uses + 1 WHERE space_id = $1 AND secret_hash = $2",
                &[&space_id, &secret_hash.as_slice()],
            )
            .await?;
            exec(
                &tx,
                "INSERT INTO members (space_id, user_id, role, joined_at_ms, roster_mac) VALUES ($1, $2, $3, $4, $5)",
                &[&space_id, &user_id, &role_name(role), &int(now_ms), &roster_mac.as_slice()],
            )
            .await?;
            let member = membership_now(&tx, space_id, user_id).await?;
            tx.commit().await?;
            Ok(member)
        })
        .await
    }

    /// The space's members in joining order, each with their published public key
    /// and roster entry; `actor` must be one.
    async fn members(&self, space_id: &str, actor: &str, page: &PageRequest) -> Result<Page<Member>, StoreError> {
        let (ms, n) = position(page)?;
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = snapshot(&mut client).await?;
            require(&tx, space_id, actor, Role::Reader).await?;
            let found = rows(
                &tx,
                "SELECT m.user_id, u.username, m.role, m.joined_at_ms, u.user_public_key, m.roster_mac, m.n
                 FROM members m JOIN users u ON u.user_id = m.user_id
                 WHERE m.space_id = $1 AND (m.joined_at_ms, m.n) > ($2, $3)
                 ORDER BY m.joined_at_ms, m.n LIMIT $4",
                &[&space_id, &ms, &n, &page_rows(page)],
            )
            .await?;
            let members = found
                .iter()
                .map(|r| {
                    let member = Member {
                        user_id: r.try_get(0)?,
                        username: r.try_get(1)?,
                        role: role_at(r, 2)?,
                        joined_at_ms: uint(r.try_get(3)?),
                        public_key: r.try_get::<_, Option<Vec<u8>>>(4)?.map(b64::encode),
                        roster_mac: r.try_get::<_, Option<Vec<u8>>>(5)?.map(b64::encode),
                    };
                    Ok((member, cursor_at(r, 3, 6)?))
                })
                .collect::<Result<Vec<_>, Failure>>()?;
            tx.commit().await?;
            Ok(paged(members, page.limit))
        })
        .await
    }

    /// Takes `user_id` out of the space. The last member leaving withdraws the space
    /// with its invites and files, refunding whoever paid for them, and gets `true`:
    /// [`PgRecords::unwind`] then takes it apart. Otherwise a rotation is due and
    /// the space's invites are deleted.
    async fn leave_space(&self, space_id: &str, user_id: &str) -> Result<bool, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, space_id, Hold::Alone).await?;
            let role = require(&tx, space_id, user_id, Role::Reader).await?;
            let (members, owners) = head_count(&tx, space_id).await?;
            if members > 1 && role == Role::Owner && owners == 1 {
                return Err(StoreError::LastOwner.into());
            }
            exec(&tx, "DELETE FROM members WHERE space_id = $1 AND user_id = $2", &[&space_id, &user_id]).await?;
            if members == 1 {
                // The last member: the space goes, at once for everyone (no member is
                // left to reach it) and a step at a time for its files (unwind).
                let gone = one(
                    &tx,
                    "UPDATE spaces SET gone = true WHERE space_id = $1 RETURNING created_by, charged_bytes",
                    &[&space_id],
                )
                .await?;
                let payer: String = gone.try_get(0)?;
                refund(&tx, &payer, uint(gone.try_get(1)?)).await?;
                exec(&tx, "DELETE FROM invites WHERE space_id = $1", &[&space_id]).await?;
            } else {
                member_went(&tx, space_id).await?;
            }
            tx.commit().await?;
            Ok(members == 1)
        })
        .await
    }

    /// `actor`, an owner, takes `user_id` out of the space: a rotation is due and the
    /// space's invites are deleted.
    async fn remove_member(&self, space_id: &str, actor: &str, user_id: &str) -> Result<(), StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, space_id, Hold::Alone).await?;
            require(&tx, space_id, actor, Role::Owner).await?;
            let found =
                row(&tx, "SELECT role FROM members WHERE space_id = $1 AND user_id = $2", &[&space_id, &user_id])
                    .await?
                    .ok_or(StoreError::NoSuchMember)?;
            if role_at(&found, 0)? == Role::Owner && head_count(&tx, space_id).await?.1 == 1 {
                return Err(StoreError::LastOwner.into());
            }
            exec(&tx, "DELETE FROM members WHERE space_id = $1 AND user_id = $2", &[&space_id, &user_id]).await?;
            member_went(&tx, space_id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Bytes the space's committed files hold; `actor` must be a member.
    async fn space_usage(&self, space_id: &str, actor: &str) -> Result<u64, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = snapshot(&mut client).await?;
            require(&tx, space_id, actor, Role::Reader).await?;
            let used = space_used_bytes(&tx, space_id).await?;
            tx.commit().await?;
            Ok(used)
        })
        .await
    }
}
