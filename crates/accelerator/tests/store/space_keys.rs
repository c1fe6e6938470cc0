//! Key epochs' cases (SPEC.md F.12): published keys, roster entries, rotation, and
//! the epoch every commit path checks. The bytes are stand-ins: the store only keeps
//! and hands back what members made.

use std::sync::Arc;

use coffer_accelerator::store::{
    Invite, NewFile, PageRequest, Quotas, Records, RotatedKey, Rotation, StoreError, User, Withdrawn,
};
use coffer_core::b64;
use coffer_core::proto::storage::Role;
use coffer_core::shard::ShardAddress;

use super::records::{drafts, new_file, uploaded};
use super::{Backend, Kind, Options, user};

/// A page with every entry a case makes.
const ALL: PageRequest = PageRequest { after: None, limit: 1000 };

/// A rotation to `epoch` for `members`, with a sealed name of 40 bytes.
fn rotation(epoch: u32, members: &[&str]) -> Rotation {
    let byte = epoch as u8;
    Rotation {
        epoch,
        sealed_name: vec![byte; 40],
        sealed_previous: vec![byte; 61],
        members: members
            .iter()
            .map(|m| RotatedKey { user_id: (*m).into(), sealed_key: vec![byte; 81], roster_mac: [byte; 32] })
            .collect(),
    }
}

/// An invite of space `s` with this secret hash, open for long.
fn invite(hash: u8) -> Invite {
    Invite { space_id: "s".into(), secret_hash: [hash; 32], role: Role::Writer, expires_at_ms: u64::MAX, max_uses: 5 }
}

/// Makes a rotation of space `s` due, as it stands at `epoch`: `user` (signed up
/// already) joins through a new invite of hash `hash` and leaves.
async fn make_due(db: &dyn Records, user: &str, epoch: u32, hash: u8) {
    db.create_invite("id-ada", &invite(hash), epoch, 0).await.unwrap();
    db.join_space("s", &[hash; 32], user, &[4; 32], 0).await.unwrap();
    assert!(!db.leave_space("s", user).await.unwrap(), "others remain");
    assert!(db.space_keys("s", "id-ada", 0, 0).await.unwrap().rotation_due);
}

pub async fn a_published_key_never_changes_and_a_roster_entry_needs_one(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&User { user_public_key: None, ..user("old", 2) }).await.unwrap();
    assert_eq!(db.create_space("s", b"n", "id-old", &[3; 32], 0, u64::MAX).await, Err(StoreError::NoPublicKey));
    db.publish_key("id-ada", &[9; 32]).await.expect("the same key again");
    assert_eq!(db.publish_key("id-ada", &[8; 32]).await, Err(StoreError::KeyPublished));
    let space = db.create_space("s", b"n", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    assert_eq!((space.epoch, space.rotation_due, space.in_roster), (0, false, true));
    db.create_invite("id-ada", &invite(1), 0, 0).await.unwrap();
    assert_eq!(db.join_space("s", &[1; 32], "id-old", &[4; 32], 0).await, Err(StoreError::NoPublicKey));
    assert_eq!(db.enter_roster("s", "id-ada", 0, &[5; 32]).await, Ok(()));

    db.publish_key("id-old", &[7; 32]).await.unwrap();
    assert_eq!(db.publish_key("id-old", &[6; 32]).await, Err(StoreError::KeyPublished));
    assert_eq!(db.user_by_name("old").await.unwrap().unwrap().user_public_key, Some([7; 32]));
    db.create_session(&[1; 32], "id-old", 100, 0, 10).await.unwrap();
    assert_eq!(db.session(&[1; 32], 0).await.unwrap().unwrap().user_public_key, Some([7; 32]));
    let joined = db.join_space("s", &[1; 32], "id-old", &[4; 32], 0).await.unwrap();
    assert!(joined.in_roster);
    let members = db.members("s", "id-old", &ALL).await.unwrap().items;
    let entries: Vec<(Option<String>, Option<String>)> =
        members.into_iter().map(|m| (m.public_key, m.roster_mac)).collect();
    let b64 = |bytes: [u8; 32]| Some(b64::encode(bytes));
    assert_eq!(entries, [(b64([9; 32]), b64([5; 32])), (b64([7; 32]), b64([4; 32]))]);
    assert_eq!(db.enter_roster("s", "id-old", 1, &[5; 32]).await, Err(StoreError::StaleEpoch { current: 0 }));
    assert_eq!(db.enter_roster("s", "id-nobody", 0, &[5; 32]).await, Err(StoreError::NotMember));
}

pub async fn every_commit_path_is_refused_off_the_current_epoch(kind: Kind) {
    // One shard a step: a file of three takes the check, three steps and the seal.
    let b = Backend::open(kind, Options { step: 1, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_user(&user("cy", 3)).await.unwrap();
    db.create_space("s", b"n", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    db.create_invite("id-ada", &invite(1), 0, 0).await.unwrap();
    db.join_space("s", &[1; 32], "id-bob", &[4; 32], 0).await.unwrap();
    let shards = uploaded(db, "id-ada", 3, 10, u64::MAX).await;
    let at = |epoch: u32, shards: &[ShardAddress], id: &str| NewFile {
        epoch,
        ..new_file("s", id, "id-ada", shards.to_vec())
    };
    let stale = |current| StoreError::StaleEpoch { current };

    // At another epoch: a commit of one step, and one of many (refused before its first).
    assert_eq!(db.commit_file(&at(1, &shards[..1], "one"), Quotas::NONE, u64::MAX).await, Err(stale(0)));
    assert_eq!(db.commit_file(&at(1, &shards, "many"), Quotas::NONE, u64::MAX).await, Err(stale(0)));
    assert_eq!(drafts(&b).await, 0);

    // A rotation between the steps: the draft's next step and its seal are refused.
    let used = db.used_bytes("id-ada").await.unwrap();
    let file = at(0, &shards, "f");
    db.draft_file(&file, 0..1, u64::MAX).await.unwrap();
    make_due(&**db, "id-cy", 0, 7).await;
    let rotated = db.rotate("s", "id-bob", &rotation(1, &["id-ada", "id-bob"]), 5).await.unwrap();
    assert_eq!((rotated.epoch, rotated.rotation_due, rotated.in_roster, rotated.role), (1, false, true, Role::Writer));
    assert_eq!(db.draft_file(&file, 1..2, u64::MAX).await, Err(stale(1)));
    assert_eq!(db.seal_draft(&file, Quotas::NONE).await, Err(stale(1)));
    db.abandon_draft("s", "f", "id-ada").await.unwrap();
    let f = Withdrawn::File { space_id: "s".into(), file_id: "f".into() };
    while !db.unwind(&f, 10).await.unwrap().done {}
    // The payer pays for the name sealed again (40 bytes, where it was 1).
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), used - 10 + 39, "the drafted upload refunded, the name charged");

    // A member removed: neither commits nor invites until the key is rotated.
    db.remove_member("s", "id-ada", "id-bob").await.unwrap();
    let shards = uploaded(db, "id-ada", 3, 10, u64::MAX).await;
    for many in [&shards[..1], &shards[..]] {
        assert_eq!(db.commit_file(&at(1, many, "g"), Quotas::NONE, u64::MAX).await, Err(StoreError::RotationDue));
    }
    assert_eq!(db.create_invite("id-ada", &invite(2), 1, 0).await, Err(StoreError::RotationDue));
    assert_eq!(db.create_invite("id-ada", &invite(2), 0, 0).await, Err(stale(1)));
    assert!(db.space_keys("s", "id-ada", 0, 10).await.unwrap().rotation_due);
    assert_eq!(db.rotate("s", "id-ada", &rotation(2, &["id-ada", "id-bob"]), 6).await, Err(StoreError::RosterChanged));
    db.rotate("s", "id-ada", &rotation(2, &["id-ada"]), 6).await.unwrap();
    let record = db.commit_file(&at(2, &shards, "g"), Quotas::NONE, u64::MAX).await.unwrap();
    assert_eq!(record.epoch, 2);
    assert_eq!(db.file("s", "g", "id-ada").await.unwrap().unwrap().epoch, 2);
    assert_eq!(db.files("s", "id-ada", &ALL).await.unwrap().items[0].epoch, 2);
    db.create_invite("id-ada", &invite(2), 2, 0).await.unwrap();

    // The keys: the links a page at a time, the key sealed to the member.
    let keys = db.space_keys("s", "id-ada", 0, 1).await.unwrap();
    assert_eq!((keys.epoch, keys.rotation_due), (2, false));
    assert_eq!((keys.sealed_name, keys.sealed_key), (vec![2; 40], Some(vec![2; 81])));
    assert_eq!(keys.links.iter().map(|l| (l.epoch, l.sealed_previous.clone())).collect::<Vec<_>>(), [(1, vec![1; 61])]);
    let rest = db.space_keys("s", "id-ada", 1, 10).await.unwrap().links;
    assert_eq!(rest.iter().map(|l| l.epoch).collect::<Vec<_>>(), [2]);
    assert_eq!(db.space_keys("s", "id-bob", 0, 10).await, Err(StoreError::NotMember));
}

pub async fn concurrent_rotations_to_one_epoch_let_one_win(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_user(&user("cy", 3)).await.unwrap();
    db.create_space("s", b"n", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    db.create_invite("id-ada", &invite(1), 0, 0).await.unwrap();
    db.join_space("s", &[1; 32], "id-bob", &[4; 32], 0).await.unwrap();
    let accelerators = Arc::new([b.another(1024).await, b.another(1024).await]);
    for epoch in 1..=4u32 {
        // Each round's rotation is due: cy came and went.
        make_due(&**db, "id-cy", epoch - 1, 10 + epoch as u8).await;
        let tries = (0..6usize).map(|n| {
            let accelerators = Arc::clone(&accelerators);
            let by = if n % 3 == 0 { "id-ada" } else { "id-bob" };
            tokio::spawn(async move {
                accelerators[n % 2].rotate("s", by, &rotation(epoch, &["id-ada", "id-bob"]), 0).await
            })
        });
        let results: Vec<_> = futures_util::future::join_all(tries).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(
            results.iter().all(|r| r.is_ok() || *r == Err(StoreError::NotNextEpoch { current: epoch })),
            "{results:?}"
        );
    }
    assert_eq!(db.space_keys("s", "id-bob", 0, 100).await.unwrap().links.len(), 4);
    assert!(!db.space_keys("s", "id-bob", 0, 0).await.unwrap().rotation_due);

    // The space goes with its links, and its payer is refunded what the name cost.
    db.remove_member("s", "id-ada", "id-bob").await.unwrap();
    assert!(db.leave_space("s", "id-ada").await.unwrap());
    let gone = Withdrawn::Space { space_id: "s".into() };
    while !db.unwind(&gone, 100).await.unwrap().done {}
    assert_eq!(b.count("SELECT count(*) FROM epoch_links").await, 0);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), 0);
}

pub async fn a_rotation_takes_a_writer_or_owner_and_a_rotation_due(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    for (name, key) in [("ada", 1), ("bob", 2), ("cy", 3), ("dee", 4)] {
        db.create_user(&user(name, key)).await.unwrap();
    }
    db.create_space("s", b"n", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    db.create_invite("id-ada", &invite(1), 0, 0).await.unwrap();
    db.create_invite("id-ada", &Invite { role: Role::Reader, ..invite(2) }, 0, 0).await.unwrap();
    db.join_space("s", &[1; 32], "id-bob", &[4; 32], 0).await.unwrap();
    db.join_space("s", &[2; 32], "id-cy", &[5; 32], 0).await.unwrap();
    let everyone = ["id-ada", "id-bob", "id-cy"];

    // Whether each member has a roster entry, as they read the keys.
    let keys = db.space_keys("s", "id-cy", 0, 10).await.unwrap();
    assert_eq!((keys.epoch, keys.rotation_due, keys.in_roster), (0, false, true));

    // None due: neither an owner nor a writer rotates; a reader never does.
    for by in ["id-ada", "id-bob"] {
        assert_eq!(db.rotate("s", by, &rotation(1, &everyone), 1).await, Err(StoreError::NoRotationDue));
    }
    let reader = Err(StoreError::RoleTooLow { needed: Role::Writer });
    assert_eq!(db.rotate("s", "id-cy", &rotation(1, &everyone), 1).await, reader);
    // The epoch is checked first: a rotation to an epoch taken says so.
    assert_eq!(
        db.rotate("s", "id-ada", &rotation(2, &everyone), 1).await,
        Err(StoreError::NotNextEpoch { current: 0 })
    );

    // Dee came and went: a rotation is due; still not by the reader.
    make_due(&**db, "id-dee", 0, 3).await;
    assert_eq!(db.rotate("s", "id-cy", &rotation(1, &everyone), 1).await, reader);
    let rotated = db.rotate("s", "id-bob", &rotation(1, &everyone), 1).await.unwrap();
    assert_eq!((rotated.epoch, rotated.rotation_due, rotated.in_roster), (1, false, true));
    let keys = db.space_keys("s", "id-cy", 0, 10).await.unwrap();
    assert_eq!((keys.epoch, keys.rotation_due, keys.in_roster, keys.sealed_key), (1, false, true, Some(vec![1; 81])));

    // Not due any more: the next epoch is refused too, and nothing changes.
    assert_eq!(db.rotate("s", "id-ada", &rotation(2, &everyone), 2).await, Err(StoreError::NoRotationDue));
    assert_eq!(
        db.rotate("s", "id-ada", &rotation(1, &everyone), 2).await,
        Err(StoreError::NotNextEpoch { current: 1 })
    );
    let keys = db.space_keys("s", "id-ada", 0, 10).await.unwrap();
    assert_eq!((keys.epoch, keys.links.len()), (1, 1));
}
