//! A space's key epochs in SQLite (SPEC.md F.12): roster entries, sealed keys, links
//! and rotation, and the checks other writes make of the epoch they name.

use std::collections::BTreeSet;

use super::*;

/// Refuses a write made under epoch `epoch`'s key unless that is the space's current
/// epoch and no rotation is due.
pub(super) fn require_epoch(conn: &Connection, space_id: &str, epoch: u32) -> Result<(), StoreError> {
    let (current, due): (u32, bool) =
        conn.row("SELECT epoch, rotation_due FROM spaces WHERE space_id = ?1", [space_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if epoch != current {
        return Err(StoreError::StaleEpoch { current });
    }
    if due {
        return Err(StoreError::RotationDue);
    }
    Ok(())
}

/// Refuses a user who has not published a public key: a roster entry names it.
pub(super) fn require_key(conn: &Connection, user_id: &str) -> Result<(), StoreError> {
    let published: bool =
        conn.row("SELECT user_public_key IS NOT NULL FROM users WHERE user_id = ?1", [user_id], |r| r.get(0))?;
    if published { Ok(()) } else { Err(StoreError::NoPublicKey) }
}

impl Db {
    pub(super) fn enter_roster(
        &self,
        space_id: &str,
        actor: &str,
        epoch: u32,
        roster_mac: &[u8; 32],
    ) -> Result<(), StoreError> {
        let (space_id, actor, roster_mac) = (space_id.to_owned(), actor.to_owned(), *roster_mac);
        self.write(move |tx| {
            let (space_id, actor) = (&space_id, &actor);
            require(tx, space_id, actor, Role::Reader)?;
            require_key(tx, actor)?;
            let current: u32 = tx.row("SELECT epoch FROM spaces WHERE space_id = ?1", [space_id], |r| r.get(0))?;
            if epoch != current {
                return Err(StoreError::StaleEpoch { current });
            }
            tx.exec(
                "UPDATE members SET roster_mac = ?3 WHERE space_id = ?1 AND user_id = ?2",
                params![space_id, actor, roster_mac],
            )?;
            Ok(())
        })
    }

    pub(super) fn space_keys(
        &self,
        space_id: &str,
        actor: &str,
        after: u32,
        limit: usize,
    ) -> Result<KeyState, StoreError> {
        let mut conn = self.reader();
        let tx = conn.transaction()?;
        require(&tx, space_id, actor, Role::Reader)?;
        let (epoch, rotation_due, in_roster, sealed_name, sealed_key) = tx.row(
            "SELECT s.epoch, s.rotation_due, m.roster_mac IS NOT NULL, s.sealed_name, m.sealed_key
             FROM spaces s JOIN members m ON m.space_id = s.space_id
             WHERE s.space_id = ?1 AND m.user_id = ?2",
            params![space_id, actor],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let links = {
            let mut stmt = tx.prepare_cached(
                "SELECT epoch, sealed_previous FROM epoch_links WHERE space_id = ?1 AND epoch > ?2
                 ORDER BY epoch LIMIT ?3",
            )?;
            stmt.query_map(params![space_id, after, int(limit as u64)], |r| {
                Ok(Link { epoch: r.get(0)?, sealed_previous: r.get(1)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(KeyState { epoch, rotation_due, in_roster, sealed_name, sealed_key, links })
    }

    pub(super) fn rotate(
        &self,
        space_id: &str,
        actor: &str,
        rotation: &Rotation,
        now_ms: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, actor, rotation) = (space_id.to_owned(), actor.to_owned(), rotation.to_owned());
        self.write(move |tx| {
            let (space_id, actor, rotation) = (&space_id, &actor, &rotation);
            require(tx, space_id, actor, Role::Writer)?;
            let (current, due, payer, charged): (u32, bool, String, i64) = tx.row(
                "SELECT epoch, rotation_due, created_by, charged_bytes FROM spaces WHERE space_id = ?1",
                [space_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            // The epoch first: of two racing to one epoch, the second is told that
            // another member rotated, not merely that none is due any more.
            if Some(rotation.epoch) != current.checked_add(1) {
                return Err(StoreError::NotNextEpoch { current });
            }
            if !due {
                return Err(StoreError::NoRotationDue);
            }
            let entered = {
                let mut stmt =
                    tx.prepare_cached("SELECT user_id FROM members WHERE space_id = ?1 AND roster_mac IS NOT NULL")?;
                stmt.query_map([space_id], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<BTreeSet<_>>>()?
            };
            if !entered.contains(actor) {
                return Err(StoreError::NotInRoster);
            }
            let listed: BTreeSet<String> = rotation.members.iter().map(|m| m.user_id.clone()).collect();
            if listed != entered || listed.len() != rotation.members.len() {
                return Err(StoreError::RosterChanged);
            }
            tx.exec(
                "INSERT INTO epoch_links (space_id, epoch, sealed_previous, made_by, made_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![space_id, rotation.epoch, rotation.sealed_previous, actor, int(now_ms)],
            )?;
            // The name sealed again may differ in length: its payer pays the difference.
            let cost = int(space_cost(rotation.sealed_name.len()));
            if cost != charged {
                charge(tx, &payer, cost - charged, u64::MAX)?;
            }
            tx.exec(
                "UPDATE spaces SET epoch = ?2, sealed_name = ?3, rotation_due = 0, charged_bytes = ?4
                 WHERE space_id = ?1",
                params![space_id, rotation.epoch, rotation.sealed_name, cost],
            )?;
            tx.exec("UPDATE members SET roster_mac = NULL, sealed_key = NULL WHERE space_id = ?1", [space_id])?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE members SET roster_mac = ?3, sealed_key = ?4 WHERE space_id = ?1 AND user_id = ?2",
                )?;
                for member in &rotation.members {
                    stmt.execute(params![space_id, member.user_id, member.roster_mac, member.sealed_key])?;
                }
            }
            // Every invite hands out the key just replaced.
            tx.exec("DELETE FROM invites WHERE space_id = ?1", [space_id])?;
            membership_now(tx, space_id, actor)
        })
    }
}

#[async_trait]
impl SpaceKeys for SqliteRecords {
    async fn enter_roster(
        &self,
        space_id: &str,
        actor: &str,
        epoch: u32,
        roster_mac: &[u8; 32],
    ) -> Result<(), StoreError> {
        let (space_id, actor, roster_mac) = (space_id.to_owned(), actor.to_owned(), *roster_mac);
        self.run(move |db| db.enter_roster(&space_id, &actor, epoch, &roster_mac)).await
    }

    async fn space_keys(&self, space_id: &str, actor: &str, after: u32, limit: usize) -> Result<KeyState, StoreError> {
        let (space_id, actor) = (space_id.to_owned(), actor.to_owned());
        self.run(move |db| db.space_keys(&space_id, &actor, after, limit)).await
    }

    async fn rotate(
        &self,
        space_id: &str,
        actor: &str,
        rotation: &Rotation,
        now_ms: u64,
    ) -> Result<Membership, StoreError> {
        let (space_id, actor, rotation) = (space_id.to_owned(), actor.to_owned(), rotation.clone());
        self.run(move |db| db.rotate(&space_id, &actor, &rotation, now_ms)).await
    }
}
