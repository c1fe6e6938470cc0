//! A space's key epochs (SPEC.md F.12): roster entries, sealed keys, links and
//! rotation, and the checks other writes make of the epoch they name.
//!
//! A space's epoch, its rotation due, and its members' entries and keys change only
//! under the space's row lock held alone (`lock_space`), as its membership does: a
//! rotation checks the epoch, that a rotation is due, and the roster against the
//! members, and writes the new epoch with nobody changing any of them in between;
//! of two rotations to one epoch the second waits for the first and then finds the
//! epoch taken. Commits and invites check the epoch under the same lock (a commit's
//! intermediate steps under it shared).

use std::collections::BTreeSet;

use coffer_core::proto::storage::Role;
use deadpool_postgres::GenericClient;

use super::accounts::charge;
use super::spaces::{Hold, lock_space, membership_now, require};
use super::{Failure, PgRecords, epoch_at, exec, int, one, retry, rows, snapshot};
use crate::store::{KeyState, Link, Membership, Rotation, SpaceKeys, StoreError, async_trait, space_cost};

/// Refuses a write made under epoch `epoch`'s key unless that is the space's current
/// epoch and no rotation is due. The caller holds the space's row.
pub(crate) async fn require_epoch(c: &impl GenericClient, space_id: &str, epoch: u32) -> Result<(), Failure> {
    let found = one(c, "SELECT epoch, rotation_due FROM spaces WHERE space_id = $1", &[&space_id]).await?;
    let (current, due): (u32, bool) = (epoch_at(&found, 0)?, found.try_get(1)?);
    if epoch != current {
        return Err(StoreError::StaleEpoch { current }.into());
    }
    if due {
        return Err(StoreError::RotationDue.into());
    }
    Ok(())
}

/// Refuses a user who has not published a public key: a roster entry names it. (A
/// published key never changes, so this needs no lock.)
pub(crate) async fn require_key(c: &impl GenericClient, user_id: &str) -> Result<(), Failure> {
    let found = one(c, "SELECT user_public_key IS NOT NULL FROM users WHERE user_id = $1", &[&user_id]).await?;
    if found.try_get(0)? { Ok(()) } else { Err(StoreError::NoPublicKey.into()) }
}

#[async_trait]
impl SpaceKeys for PgRecords {
    /// Sets `actor`'s roster entry, made under epoch `epoch`'s key: the current one.
    /// The account must have published its public key.
    async fn enter_roster(
        &self,
        space_id: &str,
        actor: &str,
        epoch: u32,
        roster_mac: &[u8; 32],
    ) -> Result<(), StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, space_id, Hold::Alone).await?;
            require(&tx, space_id, actor, Role::Reader).await?;
            require_key(&tx, actor).await?;
            let current = epoch_at(&one(&tx, "SELECT epoch FROM spaces WHERE space_id = $1", &[&space_id]).await?, 0)?;
            if epoch != current {
                return Err(StoreError::StaleEpoch { current }.into());
            }
            exec(
                &tx,
                "UPDATE members SET roster_mac = $3 WHERE space_id = $1 AND user_id = $2",
                &[&space_id, &actor, &roster_mac.as_slice()],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Where the space's keys stand for `actor`, read in one snapshot.
    async fn space_keys(&self, space_id: &str, actor: &str, after: u32, limit: usize) -> Result<KeyState, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = snapshot(&mut client).await?;
            require(&tx, space_id, actor, Role::Reader).await?;
            let state = one(
                &tx,
                "SELECT s.epoch, s.rotation_due, m.roster_mac IS NOT NULL, s.sealed_name, m.sealed_key
                 FROM spaces s JOIN members m ON m.space_id = s.space_id
                 WHERE s.space_id = $1 AND m.user_id = $2",
                &[&space_id, &actor],
            )
            .await?;
            let found = rows(
                &tx,
                "SELECT epoch, sealed_previous FROM epoch_links WHERE space_id = $1 AND epoch > $2
                 ORDER BY epoch LIMIT $3",
                &[&space_id, &i64::from(after), &int(limit as u64)],
            )
            .await?;
            tx.commit().await?;
            let links = found
                .iter()
                .map(|r| Ok(Link { epoch: epoch_at(r, 0)?, sealed_previous: r.try_get(1)? }))
                .collect::<Result<Vec<_>, Failure>>()?;
            Ok(KeyState {
                epoch: epoch_at(&state, 0)?,
                rotation_due: state.try_get(1)?,
                in_roster: state.try_get(2)?,
                sealed_name: state.try_get(3)?,
                sealed_key: state.try_get(4)?,
                links,
            })
        })
        .await
    }

    /// Rotates the space's key to `rotation.epoch`; see [`SpaceKeys::rotate`].
    async fn rotate(
        &self,
        space_id: &str,
        actor: &str,
        rotation: &Rotation,
        now_ms: u64,
    ) -> Result<Membership, StoreError> {
        retry(|| async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_space(&tx, space_id, Hold::Alone).await?;
            require(&tx, space_id, actor, Role::Writer).await?;
            let space = one(
                &tx,
                "SELECT epoch, rotation_due, created_by, charged_bytes FROM spaces WHERE space_id = $1",
                &[&space_id],
            )
            .await?;
            let (current, due, payer, charged): (u32, bool, String, i64) =
                (epoch_at(&space, 0)?, space.try_get(1)?, space.try_get(2)?, space.try_get(3)?);
            // The epoch first: of two racing to one epoch, the second is told that
            // another member rotated, not merely that none is due any more.
            if Some(rotation.epoch) != current.checked_add(1) {
                return Err(StoreError::NotNextEpoch { current }.into());
            }
            if !due {
                return Err(StoreError::NoRotationDue.into());
            }
            let entered =
                rows(&tx, "SELECT user_id FROM members WHERE space_id = $1 AND roster_mac IS NOT NULL", &[&space_id])
                    .await?
                    .iter()
                    .map(|r| r.try_get::<_, String>(0))
                    .collect::<Result<BTreeSet<_>, _>>()?;
            if !entered.contains(actor) {
                return Err(StoreError::NotInRoster.into());
            }
            let listed: BTreeSet<String> = rotation.members.iter().map(|m| m.user_id.clone()).collect();
            if listed != entered || listed.len() != rotation.members.len() {
                return Err(StoreError::RosterChanged.into());
            }
            exec(
                &tx,
                "INSERT INTO epoch_links (space_id, epoch, sealed_previous, made_by, made_at_ms)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&space_id, &i64::from(rotation.epoch), &rotation.sealed_previous, &actor, &int(now_ms)],
            )
            .await?;
            // The name sealed again may differ in length: its payer pays the difference.
            let cost = int(space_cost(rotation.sealed_name.len()));
            if cost != charged {
                charge(&tx, &payer, cost - charged, u64::MAX).await?;
            }
            exec(
                &tx,
                "UPDATE spaces SET epoch = $2, sealed_name = $3, rotation_due = false, charged_bytes = $4
                 WHERE space_id = $1",
                &[&space_id, &i64::from(rotation.epoch), &rotation.sealed_name, &cost],
            )
            .await?;
            exec(&tx, "UPDATE members SET roster_mac = NULL, sealed_key = NULL WHERE space_id = $1", &[&space_id])
                .await?;
            let user_ids: Vec<&str> = rotation.members.iter().map(|m| m.user_id.as_str()).collect();
            let macs: Vec<&[u8]> = rotation.members.iter().map(|m| m.roster_mac.as_slice()).collect();
            let keys: Vec<&[u8]> = rotation.members.iter().map(|m| m.sealed_key.as_slice()).collect();
            exec(
                &tx,
                "UPDATE members m SET roster_mac = r.roster_mac, sealed_key = r.sealed_key
                 FROM unnest($2::text[], $3::bytea[], $4::bytea[]) AS r(user_id, roster_mac, sealed_key)
                 WHERE m.space_id = $1 AND m.user_id = r.user_id",
                &[&space_id, &user_ids, &macs, &keys],
            )
            .await?;
            // Every invite hands out the key just replaced.
            exec(&tx, "DELETE FROM invites WHERE space_id = $1", &[&space_id]).await?;
            let member = membership_now(&tx, space_id, actor).await?;
            tx.commit().await?;
            Ok(member)
        })
        .await
    }
}
