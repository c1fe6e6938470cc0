//! The records' cases: accounts, kv and its log, spaces, commits in steps.

use std::sync::Arc;

use coffer_accelerator::store::{
    Authorised, Challenge, Invite, LegacyKey, MAX_LIVE_INVITES, NewFile, PageRequest, Quota, Quotas, Records, Recovery,
    StoreError, StoredValue, User, Withdrawn, file_cost, kv_cost, set_is_legacy, space_cost, value_bytes,
};
use coffer_core::account::RootSecret;
use coffer_core::names::NameKeys;
use coffer_core::proto::storage::Role;
use coffer_core::proto::{KvKeyRequest, KvRename, MAX_LEGACY_PAGE_VALUE_BYTES, MAX_RENAMES};
use coffer_core::shard::ShardAddress;

use super::{Backend, Kind, Options, user};

/// A page with every entry a case makes.
const ALL: PageRequest = PageRequest { after: None, limit: 1000 };

/// Commits opened and not yet sealed or withdrawn.
pub async fn drafts(b: &Backend) -> i64 {
    b.count("SELECT count(*) FROM files WHERE state = 'draft'").await
}

pub async fn log_is_pruned_to_retain(kind: Kind) {
    let b = Backend::open(kind, Options { retain: 3, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    for i in 1..=5u64 {
        let set = db.kv_set("id-ada", "c", &format!("k{i}"), &StoredValue::Sealed(vec![1; 29]), u64::MAX).await;
        assert_eq!(set.unwrap(), i);
    }
    assert_eq!(db.kv_delete("id-ada", "c", "nope").await.unwrap(), None);
    assert_eq!(db.kv_delete("id-ada", "c", "k1").await.unwrap(), Some(6));
    let window = db.changes_after("id-ada", 0, 100).await.unwrap();
    assert_eq!((window.head, window.floor), (6, 3));
    let seqs: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [4, 5, 6], "only the last three are kept; a reader below the floor resyncs");
    assert_eq!(window.changes[2].value, None);
    let window = db.changes_after("id-ada", 4, 1).await.unwrap();
    assert_eq!(window.changes.len(), 1, "limit respected");
    assert_eq!(window.changes[0].seq, 5);
}

pub async fn reopening_keeps_everything(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    let plain = StoredValue::Plain { json: "[1]".into(), mac: [9; 32] };
    db.kv_set("id-ada", "c", "i", &plain, u64::MAX).await.unwrap();
    let b = b.reopen().await;
    let db = &b.records;
    assert_eq!(db.kv_get("id-ada", "c", "i").await.unwrap(), Some(plain));
    assert_eq!(db.user_by_name("ada").await.unwrap().unwrap().kv_seq, 1);
    assert_eq!(db.create_user(&user("ada", 2)).await, Err(StoreError::UsernameTaken));
}

pub async fn a_key_rewritten_costs_one_value_in_the_log_and_the_allowance(kind: Kind) {
    let b = Backend::open(kind, Options { retain: 10_000, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    let value = StoredValue::Sealed(vec![1; 1000]);
    for _ in 0..200 {
        db.kv_set("id-ada", "c", "k", &value, u64::MAX).await.unwrap();
    }
    db.kv_set("id-ada", "c", "other", &value, u64::MAX).await.unwrap();
    let window = db.changes_after("id-ada", 0, 1000).await.unwrap();
    let seqs: Vec<u64> = window.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [200, 201], "only the latest change of each key is kept");
    assert_eq!(window.floor, 0, "nothing pruned: the holes are replaced changes");
    let cost = kv_cost("c", "k", &value);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), cost + kv_cost("c", "other", &value));
    // Past the allowance: refused, nothing written; a smaller value still fits.
    let big = StoredValue::Sealed(vec![1; 5000]);
    let used = db.used_bytes("id-ada").await.unwrap();
    let err = db.kv_set("id-ada", "c", "k", &big, used + 100).await.unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { limit: Quota::User, .. }), "{err:?}");
    assert_eq!(db.kv_get("id-ada", "c", "k").await.unwrap(), Some(value));
    db.kv_set("id-ada", "c", "k", &StoredValue::Sealed(vec![1; 10]), used).await.unwrap();
    db.kv_delete("id-ada", "c", "k").await.unwrap();
    db.kv_delete("id-ada", "c", "other").await.unwrap();
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), 0, "deleting refunds");
}

pub async fn a_space_holds_a_bounded_number_of_live_invites(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"n", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let invite = |n: u64, expires_at_ms: u64| Invite {
        space_id: "s".into(),
        secret_hash: {
            let mut h = [0u8; 32];
            h[..8].copy_from_slice(&n.to_be_bytes());
            h
        },
        role: Role::Reader,
        expires_at_ms,
        max_uses: 1,
    };
    for n in 0..MAX_LIVE_INVITES {
        db.create_invite("id-ada", &invite(n, 100), 0, 0).await.unwrap();
    }
    let more = db.create_invite("id-ada", &invite(MAX_LIVE_INVITES, 100), 0, 0).await;
    assert_eq!(more, Err(StoreError::TooManyInvites { max: MAX_LIVE_INVITES }));
    db.create_invite("id-ada", &invite(0, 200), 0, 0).await.expect("the same secret again replaces its invite");
    db.create_invite("id-ada", &invite(MAX_LIVE_INVITES, 300), 0, 100).await.expect("expired ones make room");
}

pub async fn challenges_are_taken_once(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    let ch = Challenge { challenge_id: "c1".into(), username: "ada".into(), challenge: [3; 32], expires_at_ms: 100 };
    db.create_challenge(&ch, 0).await.unwrap();
    assert_eq!(db.take_challenge("c1").await.unwrap(), Some(ch));
    assert_eq!(db.take_challenge("c1").await.unwrap(), None);
}

pub async fn credentials_change_only_from_the_expected_key(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_session(&[1; 32], "id-ada", 1_000, 0, 10).await.unwrap();
    db.create_session(&[2; 32], "id-ada", 1_000, 0, 10).await.unwrap();
    let new = user("ada", 7).credentials;
    assert!(
        !db.replace_credentials("id-ada", &Authorised::Login([9; 32]), &new, Some(&[1; 32])).await.unwrap(),
        "stale key"
    );
    assert!(db.session(&[2; 32], 0).await.unwrap().is_some(), "nothing revoked by a refused change");
    assert!(db.replace_credentials("id-ada", &Authorised::Login([1; 32]), &new, Some(&[1; 32])).await.unwrap());
    assert_eq!(db.user_by_name("ada").await.unwrap().unwrap().credentials, new);
    assert!(db.session(&[1; 32], 0).await.unwrap().is_some());
    assert!(db.session(&[2; 32], 0).await.unwrap().is_none());
    assert!(db.session(&[1; 32], 1_000).await.unwrap().is_none(), "expired at its expiry");
}

pub async fn a_recovery_code_replaces_credentials_only_while_it_is_current(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    let made = Recovery { public_key: [5; 32], wrapped_root: vec![1; 61] };
    db.create_user(&User { recovery: Some(made.clone()), ..user("bob", 2) }).await.unwrap();
    assert_eq!(db.user_by_name("bob").await.unwrap().unwrap().recovery, Some(made), "made with the account");
    assert_eq!(db.user_by_name("ada").await.unwrap().unwrap().recovery, None);
    db.create_session(&[1; 32], "id-ada", 1_000, 0, 10).await.unwrap();
    db.create_session(&[2; 32], "id-ada", 1_000, 0, 10).await.unwrap();
    db.create_session(&[9; 32], "id-bob", 1_000, 0, 10).await.unwrap();
    let new = user("ada", 7).credentials;
    assert!(
        !db.replace_credentials("id-ada", &Authorised::Recovery([5; 32]), &new, None).await.unwrap(),
        "no code yet"
    );

    let first = Recovery { public_key: [3; 32], wrapped_root: vec![1; 61] };
    db.set_recovery("id-ada", &first).await.unwrap();
    assert_eq!(db.user_by_name("ada").await.unwrap().unwrap().recovery, Some(first.clone()));
    assert!(
        !db.replace_credentials("id-ada", &Authorised::Recovery([4; 32]), &new, None).await.unwrap(),
        "another key"
    );
    assert!(db.session(&[1; 32], 0).await.unwrap().is_some(), "nothing revoked by a refused recovery");
    assert_eq!(db.user_by_name("ada").await.unwrap().unwrap().credentials, user("ada", 1).credentials);

    assert!(db.replace_credentials("id-ada", &Authorised::Recovery([3; 32]), &new, None).await.unwrap());
    let ada = db.user_by_name("ada").await.unwrap().unwrap();
    assert_eq!((ada.credentials, ada.recovery), (new.clone(), Some(first)), "the code stays");
    assert!(db.session(&[1; 32], 0).await.unwrap().is_none(), "every session revoked");
    assert!(db.session(&[2; 32], 0).await.unwrap().is_none());
    assert!(db.session(&[9; 32], 0).await.unwrap().is_some(), "another user's stays");

    // A new code replaces the old one whole.
    let second = Recovery { public_key: [6; 32], wrapped_root: vec![2; 61] };
    db.set_recovery("id-ada", &second).await.unwrap();
    assert!(
        !db.replace_credentials("id-ada", &Authorised::Recovery([3; 32]), &new, None).await.unwrap(),
        "the old code is gone"
    );
    assert_eq!(db.user_by_name("ada").await.unwrap().unwrap().recovery, Some(second));
    assert!(
        db.replace_credentials("id-ada", &Authorised::Recovery([6; 32]), &user("ada", 8).credentials, None)
            .await
            .unwrap()
    );
}

pub async fn signing_in_past_the_session_cap_revokes_the_oldest(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_session(&[9; 32], "id-bob", 1_000, 0, 2).await.unwrap();
    for n in 1..=4u8 {
        db.create_session(&[n; 32], "id-ada", 1_000, 0, 2).await.unwrap();
    }
    let mut live = Vec::new();
    for n in 1..=4u8 {
        live.push(db.session(&[n; 32], 0).await.unwrap().is_some());
    }
    assert_eq!(live, [false, false, true, true]);
    assert!(db.session(&[9; 32], 0).await.unwrap().is_some(), "another user's sessions are not counted");
}

pub async fn shard_stamps_references_and_collection(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s1", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let (a, b) = (ShardAddress::of(b"a"), ShardAddress::of(b"b"));
    db.record_upload("id-ada", &a, 10, 100, 100).await.unwrap();
    db.record_upload("id-ada", &b, 20, 100, 100).await.unwrap();
    db.record_upload("id-ada", &b, 20, 50, 100).await.unwrap();
    assert!(db.collectable_shards(u64::MAX, 10).await.unwrap().is_empty(), "pinned by their uploads");
    assert_eq!(db.expire_uploads(100, 10).await.unwrap(), 2);
    let mut old = db.collectable_shards(101, 10).await.unwrap();
    old.sort();
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(old, both);
    assert!(db.collectable_shards(100, 10).await.unwrap().is_empty(), "a stamp never moves back");
    db.record_upload("id-ada", &a, 10, 200, 300).await.unwrap();
    db.record_upload("id-ada", &b, 20, 200, 300).await.unwrap();
    assert_eq!(db.touch_uploads("id-ada", &[b, ShardAddress::of(b"c")], 400).await.unwrap(), [true, false]);
    assert_eq!(db.expire_uploads(300, 10).await.unwrap(), 1, "a's upload ends; b's was moved");

    let file = NewFile {
        space_id: "s1".into(),
        file_id: "f1".into(),
        sealed_record: vec![1; 30],
        shards: vec![a, b].into(),
        max_shard_bytes: u64::MAX,
        created_by: "id-ada".into(),
        created_at_ms: 300,
        epoch: 0,
    };
    db.record_upload("id-ada", &a, 10, 300, 400).await.unwrap();
    let quotas = |space_bytes| Quotas { space_bytes, user_bytes: u64::MAX };
    assert_eq!(
        db.commit_file(&file, quotas(29), u64::MAX).await,
        Err(StoreError::QuotaExceeded { limit: Quota::Space, used: 0, adding: 30, quota: 29 })
    );
    // Refused in one step: nothing changed, the uploads still charged and pinned.
    assert!(db.withdrawn(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), space_cost(4) + 30);
    assert_eq!(db.touch_uploads("id-ada", &[a, b], 400).await.unwrap(), [true, true]);
    assert_eq!(db.commit_file(&file, quotas(30), u64::MAX).await.unwrap().stored_bytes, 30, "each shard counted once");
    assert!(db.collectable_shards(u64::MAX, 10).await.unwrap().is_empty(), "referenced shards are not candidates");
    assert!(db.forget_shards(&[a], u64::MAX).await.unwrap().is_empty(), "a referenced shard is kept");
    let more = NewFile { file_id: "f2".into(), shards: vec![ShardAddress::of(b"gone")].into(), ..file.clone() };
    assert_eq!(
        db.commit_file(&more, Quotas::NONE, u64::MAX).await,
        Err(StoreError::MissingShards { missing: 1, listed: 1 })
    );
    assert_eq!(db.commit_file(&file, Quotas::NONE, u64::MAX).await, Err(StoreError::FileTaken));

    assert!(db.delete_file("s1", "f1", "id-ada").await.unwrap());
    let f1 = Withdrawn::File { space_id: "s1".into(), file_id: "f1".into() };
    assert!(db.files("s1", "id-ada", &PageRequest { after: None, limit: 10 }).await.unwrap().items.is_empty());
    assert_eq!(db.withdrawn(0, 10).await.unwrap(), std::slice::from_ref(&f1));
    let mut freed = db.unwind(&f1, 10).await.unwrap();
    assert!(freed.done);
    freed.freed.sort();
    assert_eq!(freed.freed, both);
    assert!(!db.delete_file("s1", "f1", "id-ada").await.unwrap());
    assert_eq!(db.forget_shards(&[a], u64::MAX).await.unwrap(), [a]);
    assert!(!db.shard_recorded(&a).await.unwrap());
    assert!(db.forget_shards(&[b], 150).await.unwrap().is_empty(), "too recent for the collector");
    assert_eq!(db.forget_shards(&[b], 301).await.unwrap(), [b]);
}

/// `n` shards of `size` bytes that `user_id` uploaded, pinned until `expires_at_ms`.
pub async fn uploaded(
    db: &Arc<dyn Records>,
    user_id: &str,
    n: u32,
    size: u64,
    expires_at_ms: u64,
) -> Vec<ShardAddress> {
    let shards: Vec<ShardAddress> = (0..n).map(|i| ShardAddress::of(format!("{user_id}-{i}").as_bytes())).collect();
    for address in &shards {
        db.record_upload(user_id, address, size, 0, expires_at_ms).await.unwrap();
    }
    shards
}

pub fn new_file(space_id: &str, file_id: &str, created_by: &str, shards: Vec<ShardAddress>) -> NewFile {
    NewFile {
        space_id: space_id.into(),
        file_id: file_id.into(),
        sealed_record: vec![1; 40],
        shards: shards.into(),
        max_shard_bytes: u64::MAX,
        created_by: created_by.into(),
        created_at_ms: 1,
        epoch: 0,
    }
}

pub async fn other_writes_come_between_the_steps_of_a_commit(kind: Kind) {
    let b = Backend::open(kind, Options { step: 4, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_user(&user("bob", 2)).await.unwrap();
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let shards = uploaded(db, "id-ada", 2000, 10, u64::MAX).await;
    let file = new_file("s", "f", "id-ada", shards);
    let committer = {
        let (db, file) = (Arc::clone(db), file.clone());
        tokio::spawn(async move { db.commit_file(&file, Quotas::NONE, u64::MAX).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while drafts(&b).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the commit never started");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // Bob's write waits for one step at most, not for the whole commit.
    db.kv_set("id-bob", "c", "k", &StoredValue::Sealed(vec![1; 29]), u64::MAX).await.unwrap();
    assert_eq!(drafts(&b).await, 1, "bob's write went in between two steps of ada's commit");
    let committed = committer.await.unwrap().unwrap();
    assert_eq!(committed.stored_bytes, 20_000);
    assert_eq!(drafts(&b).await, 0);
    let charged = file_cost(20_000, 2000, 40) + space_cost(4);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), charged, "the uploads became the file");
}

pub async fn a_commit_of_many_steps_is_refused_before_its_first(kind: Kind) {
    let b = Backend::open(kind, Options { step: 2, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let shards = uploaded(db, "id-ada", 5, 10, u64::MAX).await;
    let used = db.used_bytes("id-ada").await.unwrap();
    let mut listed = shards.clone();
    listed.push(ShardAddress::of(b"never uploaded"));
    let refusals = [
        (new_file("s", "f", "id-ada", listed), Quotas::NONE),
        (new_file("s", "f", "id-ada", shards.clone()), Quotas { space_bytes: 49, user_bytes: u64::MAX }),
        (new_file("s", "f", "id-ada", shards.clone()), Quotas { space_bytes: u64::MAX, user_bytes: used + 10 }),
        (NewFile { max_shard_bytes: 49, ..new_file("s", "f", "id-ada", shards.clone()) }, Quotas::NONE),
    ];
    for (file, quotas) in refusals {
        let err = db.commit_file(&file, quotas, u64::MAX).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::MissingShards { .. } | StoreError::QuotaExceeded { .. } | StoreError::OverDeclared { .. }
            ),
            "{err:?}"
        );
        assert_eq!(drafts(&b).await, 0, "refused before a draft was opened");
        assert!(db.withdrawn(u64::MAX, 10).await.unwrap().is_empty());
        assert_eq!(db.used_bytes("id-ada").await.unwrap(), used);
        assert_eq!(db.touch_uploads("id-ada", &shards, u64::MAX).await.unwrap(), [true; 5], "the uploads stay");
    }
    db.commit_file(&new_file("s", "f", "id-ada", shards), Quotas::NONE, u64::MAX).await.unwrap();
}

pub async fn a_commit_that_never_finished_is_withdrawn_at_its_deadline(kind: Kind) {
    let b = Backend::open(kind, Options { step: 2, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let shards = uploaded(db, "id-ada", 5, 10, u64::MAX).await;
    let base = space_cost(4);
    let file = new_file("s", "f", "id-ada", shards.clone());
    // Two steps, then the accelerator stops.
    db.draft_file(&file, 0..2, 100).await.unwrap();
    db.draft_file(&file, 2..4, 100).await.unwrap();
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), base + 50, "settled uploads moved their charge to the draft");
    assert!(db.files("s", "id-ada", &PageRequest { after: None, limit: 10 }).await.unwrap().items.is_empty());
    assert_eq!(
        db.draft_file(&new_file("s", "f", "id-ada", shards.clone()), 0..1, 100).await,
        Err(StoreError::FileTaken)
    );
    assert!(db.withdrawn(99, 10).await.unwrap().is_empty(), "before its deadline a draft is left alone");
    let f = Withdrawn::File { space_id: "s".into(), file_id: "f".into() };
    assert_eq!(db.withdrawn(100, 10).await.unwrap(), std::slice::from_ref(&f));
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), base + 10, "the draft is refunded; one upload is left");
    let (mut freed, mut steps) = (Vec::new(), 0);
    loop {
        let step = db.unwind(&f, 2).await.unwrap();
        freed.extend(step.freed);
        steps += 1;
        if step.done {
            break;
        }
    }
    assert!(steps > 1, "taken apart in steps");
    freed.sort();
    let mut settled = shards[..4].to_vec();
    settled.sort();
    assert_eq!(freed, settled);
    assert!(db.withdrawn(100, 10).await.unwrap().is_empty());
    // The id is free again.
    db.record_upload("id-ada", &shards[0], 10, 0, u64::MAX).await.unwrap();
    db.commit_file(&new_file("s", "f", "id-ada", vec![shards[0], shards[4]]), Quotas::NONE, u64::MAX).await.unwrap();
}

pub async fn a_space_its_last_member_left_goes_a_step_at_a_time(kind: Kind) {
    let b = Backend::open(kind, Options { step: 2, ..Options::default() }).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    let mut all = Vec::new();
    for f in ["f", "g", "h"] {
        let shards: Vec<ShardAddress> = (0..3).map(|i| ShardAddress::of(format!("{f}{i}").as_bytes())).collect();
        for a in &shards {
            db.record_upload("id-ada", a, 10, 0, u64::MAX).await.unwrap();
        }
        db.commit_file(&new_file("s", f, "id-ada", shards.clone()), Quotas::NONE, u64::MAX).await.unwrap();
        all.extend(shards);
    }
    // h's shards are also used in another space: they stay.
    db.create_space("t", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
    for a in &all[6..] {
        db.record_upload("id-ada", a, 10, 0, u64::MAX).await.unwrap();
    }
    db.commit_file(&new_file("t", "h", "id-ada", all[6..].to_vec()), Quotas::NONE, u64::MAX).await.unwrap();
    let kept = db.used_bytes("id-ada").await.unwrap() - 3 * file_cost(30, 3, 40) - space_cost(4);
    let references = || b.count("SELECT count(*) FROM file_shards WHERE space_id = 's'");
    assert!(db.leave_space("s", "id-ada").await.unwrap(), "the last member's leaving withdraws the space");
    let none = PageRequest { after: None, limit: 10 };
    let spaces: Vec<String> =
        db.spaces_of("id-ada", &none).await.unwrap().items.into_iter().map(|m| m.space_id).collect();
    assert_eq!(spaces, ["t"], "gone for everyone at once");
    let files = 3 * file_cost(30, 3, 40);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), kept + files, "the space is refunded; its files as they go");
    let s = Withdrawn::Space { space_id: "s".into() };
    assert_eq!(db.withdrawn(0, 10).await.unwrap(), std::slice::from_ref(&s));
    let (mut freed, mut steps) = (Vec::new(), 0);
    loop {
        let before = references().await;
        let step = db.unwind(&s, 2).await.unwrap();
        assert!(before - references().await <= 2, "a step drops at most its limit of references");
        freed.extend(step.freed);
        steps += 1;
        if step.done {
            break;
        }
    }
    assert!(steps > 5, "{steps} steps");
    assert_eq!(references().await, 0);
    freed.sort();
    let mut only_s = all[..6].to_vec();
    only_s.sort();
    assert_eq!(freed, only_s, "the shards another space uses stay");
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), kept, "the space and its files are refunded");
    assert!(db.withdrawn(0, 10).await.unwrap().is_empty());
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.unwrap();
}

pub async fn kv_lists_in_byte_order_with_cursors(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    // Byte order, whatever the server's locale: "B" < "a" < "b" < "é".
    for id in ["é", "b", "a", "B"] {
        db.kv_set("id-ada", "c", id, &StoredValue::Sealed(vec![1]), u64::MAX).await.unwrap();
    }
    db.kv_set("id-ada", "other", "x", &StoredValue::Sealed(vec![1]), u64::MAX).await.unwrap();
    let first = db.kv_list("id-ada", "c", &PageRequest { after: None, limit: 3 }).await.unwrap();
    assert_eq!(first.items, ["B", "a", "b"]);
    let rest = db.kv_list("id-ada", "c", &PageRequest { after: first.next, limit: 3 }).await.unwrap();
    assert_eq!((rest.items, rest.next), (vec!["é".to_string()], None));
}

/// `collection` and `id` sealed, as an SDK with sealed names sends them: names of a
/// sealed name's shape, which a set stores as not legacy.
fn sealed(collection: &str, id: &str) -> KvKeyRequest {
    let names = NameKeys::derive(&RootSecret::from_bytes([7; 32]));
    KvKeyRequest { collection: names.seal_collection(collection), id: names.seal_id(collection, id) }
}

/// A key under these names.
fn key(collection: &str, id: &str) -> KvKeyRequest {
    KvKeyRequest { collection: collection.into(), id: id.into() }
}

/// A legacy key as [`Kv::kv_legacy`](coffer_accelerator::store::Kv::kv_legacy) lists it.
fn legacy_key(key: &KvKeyRequest, value: &StoredValue) -> LegacyKey {
    LegacyKey { collection: key.collection.clone(), id: key.id.clone(), value: value.clone() }
}

/// The names of a page of legacy keys.
fn names(page: &[LegacyKey]) -> Vec<KvKeyRequest> {
    page.iter().map(|k| key(&k.collection, &k.id)).collect()
}

pub async fn legacy_keys_are_listed_in_order_and_renamed_moved_dropped_or_skipped(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    for (name, key) in [("ada", 1), ("bob", 2)] {
        db.create_user(&user(name, key)).await.unwrap();
    }
    let value = |n: u8| StoredValue::Sealed(vec![n; 10 * usize::from(n)]);
    let rename = |from: &KvKeyRequest, to: &KvKeyRequest| KvRename { from: from.clone(), to: to.clone() };
    let set =
        |k: KvKeyRequest, n: u8| async move { db.kv_set("id-ada", &k.collection, &k.id, &value(n), u64::MAX).await };
    let [gone, x, new, new_to, absent, again] =
        [("s", "gone"), ("s", "x"), ("t", "new"), ("s", "new"), ("s", "absent"), ("s", "again")]
            .map(|(c, i)| sealed(c, i));
    // Before sealed names: seqs 1 to 3, and a key (seq 4) deleted at seq 5 whose
    // delete stays in the log under the names a rename then moves to.
    for (n, k) in [key("c", "b"), key("c", "a"), key("d", "x"), gone.clone()].into_iter().enumerate() {
        set(k, n as u8 + 1).await.unwrap();
    }
    assert_eq!(db.kv_delete("id-ada", &gone.collection, &gone.id).await.unwrap(), Some(5));
    db.kv_set("id-bob", "c", "a", &value(5), u64::MAX).await.unwrap();
    b.execute("UPDATE kv SET legacy_name = true").await;
    // Since sealed names, under sealed names.
    assert_eq!(set(new.clone(), 6).await.unwrap(), 6);
    assert_eq!(set(x.clone(), 7).await.unwrap(), 7);

    // By collection, then id, each with its value as stored.
    let legacy = db.kv_legacy("id-ada", 10).await.unwrap();
    let expected = [(key("c", "a"), 2), (key("c", "b"), 1), (key("d", "x"), 3)].map(|(k, n)| legacy_key(&k, &value(n)));
    assert_eq!(legacy, expected);
    assert_eq!(db.kv_legacy("id-ada", 2).await.unwrap(), legacy[..2]);
    assert_eq!(db.kv_legacy("id-bob", 10).await.unwrap(), [legacy_key(&key("c", "a"), &value(5))]);

    let renames = [
        rename(&key("c", "b"), &gone),
        rename(&key("c", "a"), &key("c", "a")),
        rename(&key("d", "x"), &x),
        rename(&new, &new_to),
        rename(&key("c", "absent"), &absent),
        rename(&key("c", "b"), &again),
    ];
    let answer = db.kv_rename("id-ada", &renames).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (2, 1));
    assert_eq!(db.kv_legacy("id-ada", 10).await.unwrap(), []);
    assert_eq!(
        names(&db.kv_legacy("id-bob", 10).await.unwrap()),
        [key("c", "a")],
        "another user's keys are not reached"
    );
    assert_eq!(db.kv_get("id-bob", "c", "a").await.unwrap(), Some(value(5)));
    let stored = [(gone.clone(), 1), (key("c", "a"), 2), (new.clone(), 6), (x.clone(), 7)];
    for (k, n) in &stored {
        assert_eq!(db.kv_get("id-ada", &k.collection, &k.id).await.unwrap(), Some(value(*n)), "{k:?}");
    }
    for k in [key("c", "b"), key("d", "x"), new_to, absent, again] {
        assert_eq!(db.kv_get("id-ada", &k.collection, &k.id).await.unwrap(), None, "{k:?}");
    }
    let mut in_s = vec![gone.id.clone(), x.id.clone()];
    in_s.sort();
    assert_eq!(db.kv_list("id-ada", &gone.collection, &ALL).await.unwrap().items, in_s);

    // The moved key's entry keeps seq 1 under its new names (the delete it lands on
    // goes), the dropped key's goes, and no change is added.
    let window = db.changes_after("id-ada", 0, 100).await.unwrap();
    assert_eq!(window.head, 7);
    let log: Vec<(u64, KvKeyRequest, Option<StoredValue>)> =
        window.changes.iter().map(|c| (c.seq, key(&c.collection, &c.id), c.value.clone())).collect();
    assert_eq!(
        log,
        [
            (1, gone.clone(), Some(value(1))),
            (2, key("c", "a"), Some(value(2))),
            (6, new.clone(), Some(value(6))),
            (7, x.clone(), Some(value(7)))
        ]
    );
    // c/a, no longer legacy, written again under its plain names is legacy again.
    assert_eq!(db.kv_set("id-ada", "c", "a", &value(2), u64::MAX).await.unwrap(), 8);
    assert_eq!(db.kv_legacy("id-ada", 10).await.unwrap(), [legacy_key(&key("c", "a"), &value(2))]);
    let cost: u64 = stored.iter().map(|(k, n)| kv_cost(&k.collection, &k.id, &value(*n))).sum();
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), cost);
    assert_eq!(db.used_bytes("id-bob").await.unwrap(), kv_cost("c", "a", &value(5)));
}

pub async fn a_legacy_page_holds_values_up_to_its_byte_cap(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    let cap = MAX_LEGACY_PAGE_VALUE_BYTES;
    let sealed_of = |len: usize| StoredValue::Sealed(vec![7; len]);
    // JSON text and its MAC: `len` bytes as stored.
    let plain_of = |len: usize| StoredValue::Plain { json: "1".repeat(len - 32), mac: [3; 32] };
    let keys: Vec<(KvKeyRequest, StoredValue)> = [
        ("a", sealed_of(cap + 1000)), // the first: on the page, however large
        ("b", plain_of(cap / 2)),
        ("c", sealed_of(cap / 2)), // b and c: exactly the cap
        ("d", sealed_of(1)),       // one byte past it: the next page
        ("e", sealed_of(cap + 1)), // past the cap alone
        ("f", sealed_of(cap + 1)),
    ]
    .into_iter()
    .map(|(id, value)| (key("k", id), value))
    .collect();
    assert_eq!(value_bytes(&keys[1].1) + value_bytes(&keys[2].1), cap as u64);
    for (k, value) in &keys {
        db.kv_set("id-ada", &k.collection, &k.id, value, u64::MAX).await.unwrap();
    }
    b.execute("UPDATE kv SET legacy_name = true").await;
    let expected = |range: std::ops::Range<usize>| -> Vec<LegacyKey> {
        keys[range].iter().map(|(k, value)| legacy_key(k, value)).collect()
    };
    let page = || async { db.kv_legacy("id-ada", MAX_RENAMES).await.unwrap() };

    // The first key always, then as many as keep the values past it within the cap:
    // each value as stored, sealed or plain.
    assert_eq!(page().await, expected(0..3));
    assert_eq!(db.kv_legacy("id-ada", 2).await.unwrap(), expected(0..2), "and at most the limit");
    // A byte more in c, and c waits for the next page.
    db.kv_set("id-ada", "k", "c", &sealed_of(cap / 2 + 1), u64::MAX).await.unwrap();
    assert_eq!(page().await, expected(0..2));
    db.kv_set("id-ada", "k", "c", &keys[2].1, u64::MAX).await.unwrap();

    // Each page after the keys before it move on: d alone (e would pass the cap), e
    // alone (larger than the cap, and so is f), then f.
    let mut pages = Vec::new();
    loop {
        let keys = page().await;
        if keys.is_empty() {
            break;
        }
        let renames: Vec<KvRename> = keys
            .iter()
            .map(|k| KvRename { from: key(&k.collection, &k.id), to: sealed(&k.collection, &k.id) })
            .collect();
        assert_eq!(db.kv_rename("id-ada", &renames).await.unwrap().renamed, keys.len() as u32);
        pages.push(keys);
    }
    assert_eq!(pages, [expected(0..3), expected(3..4), expected(4..5), expected(5..6)]);
    for (k, value) in &keys {
        let to = sealed(&k.collection, &k.id);
        assert_eq!(db.kv_get("id-ada", &to.collection, &to.id).await.unwrap().as_ref(), Some(value), "{k:?}");
    }
}

pub async fn a_set_is_legacy_unless_both_names_look_sealed(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    db.create_user(&user("ada", 1)).await.unwrap();
    let value = StoredValue::Plain { json: r#""v""#.into(), mac: [5; 32] };
    let both = sealed("todos", "t1");
    let plain = key("todos", "t1");
    let keys = [
        (both.clone(), false),
        (key(&plain.collection, &both.id), true),
        (key(&both.collection, &plain.id), true),
        (plain.clone(), true),
        // A name of sealed length that is not base64url.
        (key(&both.collection, &both.id.replace(|c: char| c.is_ascii_alphabetic(), "!")), true),
    ];
    for (k, legacy) in &keys {
        assert_eq!(set_is_legacy(&k.collection, &k.id), *legacy, "{k:?}");
        db.kv_set("id-ada", &k.collection, &k.id, &value, u64::MAX).await.unwrap();
    }
    let mut expected: Vec<KvKeyRequest> = keys.iter().filter(|(_, legacy)| *legacy).map(|(k, _)| k.clone()).collect();
    expected.sort_by(|a, b| (&a.collection, &a.id).cmp(&(&b.collection, &b.id)));
    let legacy = db.kv_legacy("id-ada", 10).await.unwrap();
    assert_eq!(names(&legacy), expected, "every key but the one under sealed names");
    assert!(legacy.iter().all(|k| k.value == value));

    // A legacy key written again under sealed-shaped names (the migration marked every
    // key, whatever its names) stays legacy; written under plain names, a key that is
    // not legacy becomes legacy.
    b.execute("UPDATE kv SET legacy_name = true").await;
    db.kv_set("id-ada", &both.collection, &both.id, &value, u64::MAX).await.unwrap();
    assert!(names(&db.kv_legacy("id-ada", 10).await.unwrap()).contains(&both));

    // The plain key moves to sealed names like any legacy key, and is not legacy
    // there.
    let moved = KvRename { from: plain.clone(), to: sealed("todos", "t2") };
    let answer = db.kv_rename("id-ada", &[moved.clone(), KvRename { from: both.clone(), to: both.clone() }]).await;
    assert_eq!((answer.as_ref().unwrap().renamed, answer.unwrap().dropped), (2, 0));
    let left = names(&db.kv_legacy("id-ada", 10).await.unwrap());
    assert_eq!(left.len(), 3);
    assert!(!left.contains(&plain) && !left.contains(&moved.to) && !left.contains(&both), "{left:?}");
    assert_eq!(db.kv_get("id-ada", &moved.to.collection, &moved.to.id).await.unwrap(), Some(value.clone()));
    db.kv_set("id-ada", &moved.to.collection, &moved.to.id, &value, u64::MAX).await.unwrap();
    assert_eq!(names(&db.kv_legacy("id-ada", 10).await.unwrap()), left, "written again, still not legacy");

    // A key renamed to its own plain names stops being legacy; written again, it is
    // legacy again.
    let own = left[0].clone();
    db.kv_rename("id-ada", &[KvRename { from: own.clone(), to: own.clone() }]).await.unwrap();
    assert!(!names(&db.kv_legacy("id-ada", 10).await.unwrap()).contains(&own));
    db.kv_set("id-ada", &own.collection, &own.id, &value, u64::MAX).await.unwrap();
    assert_eq!(names(&db.kv_legacy("id-ada", 10).await.unwrap()), left);
}

pub async fn a_rename_for_a_user_with_nothing_legacy_looks_nothing_up(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    for (name, key) in [("ada", 1), ("bob", 2)] {
        db.create_user(&user(name, key)).await.unwrap();
    }
    let value = StoredValue::Sealed(vec![4; 40]);
    let own: Vec<KvKeyRequest> = (0..3).map(|n| sealed("c", &format!("k{n}"))).collect();
    for k in &own {
        db.kv_set("id-ada", &k.collection, &k.id, &value, u64::MAX).await.unwrap();
    }
    // Bob's key, under plain names, is legacy: ada's renames cannot reach it.
    db.kv_set("id-bob", "c", "k0", &value, u64::MAX).await.unwrap();
    assert_eq!(db.kv_legacy("id-ada", 10).await.unwrap(), []);
    let used = db.used_bytes("id-ada").await.unwrap();
    let log = db.changes_after("id-ada", 0, 100).await.unwrap();

    // A full batch: ada's own keys, one to its own names, bob's key, absent keys.
    let mut renames: Vec<KvRename> =
        own.iter().map(|k| KvRename { from: k.clone(), to: sealed("moved", &k.id) }).collect();
    renames.push(KvRename { from: own[0].clone(), to: own[0].clone() });
    renames.push(KvRename { from: key("c", "k0"), to: sealed("c", "bobs") });
    renames.extend(
        (renames.len()..MAX_RENAMES).map(|n| KvRename { from: key("c", &format!("a{n}")), to: sealed("c", "a") }),
    );
    let answer = db.kv_rename("id-ada", &renames).await.unwrap();
    assert_eq!((answer.renamed, answer.dropped), (0, 0));
    for k in &own {
        assert_eq!(db.kv_get("id-ada", &k.collection, &k.id).await.unwrap().as_ref(), Some(&value));
    }
    assert_eq!(db.kv_list("id-ada", &sealed("moved", "").collection, &ALL).await.unwrap().items, Vec::<String>::new());
    assert_eq!(db.kv_get("id-ada", &sealed("c", "bobs").collection, &sealed("c", "bobs").id).await.unwrap(), None);
    assert_eq!(db.changes_after("id-ada", 0, 100).await.unwrap(), log);
    assert_eq!(db.used_bytes("id-ada").await.unwrap(), used);
    assert_eq!(names(&db.kv_legacy("id-bob", 10).await.unwrap()), [key("c", "k0")]);
    assert_eq!(db.kv_get("id-bob", "c", "k0").await.unwrap(), Some(value.clone()));

    // On PostgreSQL the answer comes before the user's lock is taken: it comes while
    // a write of ada's holds it. Bob's renames, with a legacy key to look for, wait
    // for his.
    if let Some(lock) = b.hold_user_lock("id-ada").await {
        let quick = tokio::time::timeout(std::time::Duration::from_secs(10), db.kv_rename("id-ada", &renames)).await;
        assert_eq!(quick.expect("answered without waiting for the lock").unwrap().renamed, 0);
        drop(lock);
        let bobs = [KvRename { from: key("c", "k0"), to: sealed("c", "k0") }];
        let lock = b.hold_user_lock("id-bob").await.unwrap();
        let waits = tokio::time::timeout(std::time::Duration::from_millis(500), db.kv_rename("id-bob", &bobs)).await;
        assert!(waits.is_err(), "bob's rename waits for his lock");
        drop(lock);
        assert_eq!(db.kv_rename("id-bob", &bobs).await.unwrap().renamed, 1);
    }
}

pub async fn membership_roles_invites_and_pages(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let db = &b.records;
    for (name, key) in [("ada", 1), ("bob", 2), ("cy", 3)] {
        db.create_user(&user(name, key)).await.unwrap();
    }
    db.create_space("s", b"name", "id-ada", &[3; 32], 5, u64::MAX).await.unwrap();
    assert_eq!(db.create_space("s", b"name", "id-bob", &[3; 32], 5, u64::MAX).await, Err(StoreError::SpaceTaken));
    let invite =
        Invite { space_id: "s".into(), secret_hash: [7; 32], role: Role::Writer, expires_at_ms: 50, max_uses: 1 };
    assert_eq!(db.create_invite("id-bob", &invite, 0, 0).await, Err(StoreError::NotMember));
    db.create_invite("id-ada", &invite, 0, 0).await.unwrap();
    assert_eq!(db.join_space("s", &[8; 32], "id-bob", &[4; 32], 0).await, Err(StoreError::InviteInvalid));
    assert_eq!(db.join_space("s", &[7; 32], "id-bob", &[4; 32], 50).await, Err(StoreError::InviteExpired));
    assert_eq!(db.join_space("s", &[7; 32], "id-bob", &[4; 32], 10).await.unwrap().role, Role::Writer);
    assert_eq!(
        db.join_space("s", &[7; 32], "id-bob", &[4; 32], 10).await.unwrap().role,
        Role::Writer,
        "a member again"
    );
    assert_eq!(db.join_space("s", &[7; 32], "id-cy", &[4; 32], 10).await, Err(StoreError::InviteUsedUp));
    assert_eq!(db.create_invite("id-bob", &invite, 0, 0).await, Err(StoreError::RoleTooLow { needed: Role::Owner }));
    assert_eq!(db.remove_member("s", "id-bob", "id-ada").await, Err(StoreError::RoleTooLow { needed: Role::Owner }));
    assert_eq!(db.remove_member("s", "id-ada", "id-cy").await, Err(StoreError::NoSuchMember));
    assert_eq!(db.remove_member("s", "id-ada", "id-ada").await, Err(StoreError::LastOwner));
    assert_eq!(db.leave_space("s", "id-ada").await, Err(StoreError::LastOwner));
    let first = db.members("s", "id-bob", &PageRequest { after: None, limit: 1 }).await.unwrap();
    assert_eq!(first.items[0].user_id, "id-ada");
    let rest = db.members("s", "id-bob", &PageRequest { after: first.next, limit: 1 }).await.unwrap();
    assert_eq!((rest.items[0].user_id.as_str(), rest.next), ("id-bob", None));
    let bad = PageRequest { after: Some("nope".into()), limit: 1 };
    assert_eq!(db.members("s", "id-bob", &bad).await, Err(StoreError::BadCursor));
    assert_eq!(db.members("s", "id-cy", &ALL).await, Err(StoreError::NotMember));
    db.create_space("t", b"name", "id-bob", &[3; 32], 1, u64::MAX).await.unwrap();
    let spaces: Vec<String> =
        db.spaces_of("id-bob", &ALL).await.unwrap().items.into_iter().map(|m| m.space_id).collect();
    assert_eq!(spaces, ["t", "s"], "oldest first");
    db.remove_member("s", "id-ada", "id-bob").await.unwrap();
    assert_eq!(db.space_usage("s", "id-bob").await, Err(StoreError::NotMember));
    assert_eq!(db.leave_space("t", "id-bob").await, Ok(true), "the last member leaves");
}
