//! Shard holds ([`Files::hold_shards`]) across accelerators: what they keep apart,
//! what they do not, and the race they exist for.
//!
//! [`Files::hold_shards`]: coffer_accelerator::store::Files::hold_shards

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coffer_accelerator::store::keeper::{ShardKeeper, Upload};
use coffer_accelerator::store::{NewFile, Quotas, StoreError, User, Withdrawn};
use coffer_core::shard::ShardAddress;
use tokio::time::timeout;

use super::{Backend, Kind, Options, user};

/// Long enough for a hold that is free to be granted, even on a loaded machine.
const GRANTED: Duration = Duration::from_secs(10);

/// How long a hold that waits is watched waiting.
const WAITS: Duration = Duration::from_millis(300);

pub async fn holds_wait_only_for_holds_of_the_same_address(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let other = b.another(1024).await;
    let [x, y, z] = [b"x", b"y", b"z"].map(|bytes| ShardAddress::of(bytes));
    let held = b.records.hold_shards(&[x, y]).await.unwrap();
    // Another accelerator's hold of another address is granted at once…
    let elsewhere = timeout(GRANTED, other.hold_shards(&[z])).await.expect("not held: granted").unwrap();
    drop(elsewhere);
    // …one of a held address waits, on another accelerator and on this one.
    assert!(timeout(WAITS, other.hold_shards(&[y])).await.is_err(), "held elsewhere: waits");
    assert!(timeout(WAITS, b.records.hold_shards(&[x])).await.is_err(), "held here: waits");
    let waiting = {
        let other = Arc::clone(&other);
        tokio::spawn(async move { other.hold_shards(&[z, x]).await })
    };
    tokio::time::sleep(WAITS).await;
    assert!(!waiting.is_finished(), "a set with one held address waits");
    drop(held);
    let granted = timeout(GRANTED, waiting).await.expect("granted once released").unwrap().unwrap();
    drop(granted);
    // The waits given up above left nothing held behind them.
    let all = timeout(GRANTED, b.records.hold_shards(&[x, y, z])).await.expect("all released").unwrap();
    drop(all);
}

pub async fn holds_of_overlapping_sets_never_wait_in_a_circle(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    let other = b.another(1024).await;
    let addresses: Vec<ShardAddress> = (0u8..8).map(|i| ShardAddress::of(&[i])).collect();
    let mut reversed = addresses.clone();
    reversed.reverse();
    let mut sides = Vec::new();
    for (records, order) in [(Arc::clone(&b.records), addresses), (other, reversed)] {
        sides.push(tokio::spawn(async move {
            for _ in 0..50 {
                let held = records.hold_shards(&order).await?;
                tokio::task::yield_now().await;
                drop(held);
            }
            Ok::<_, StoreError>(())
        }));
    }
    for side in sides {
        timeout(Duration::from_secs(60), side).await.expect("no circle").unwrap().unwrap();
    }
}

/// Rounds of the race: enough that, without holds, it is lost in most runs.
const ROUNDS: usize = 150;

/// A file of one shard.
fn file(space_id: &str, file_id: &str, by: &str, shard: ShardAddress) -> NewFile {
    NewFile {
        space_id: space_id.into(),
        file_id: file_id.into(),
        sealed_record: vec![1],
        shards: [shard].into(),
        max_shard_bytes: u64::MAX,
        created_by: by.into(),
        created_at_ms: 0,
        epoch: 0,
    }
}

/// `user_id`'s upload of `address`, pinned for a long time.
fn upload(user_id: &str, address: ShardAddress) -> Upload {
    Upload { user_id: user_id.into(), address, now_ms: 0, expires_at_ms: u64::MAX / 2, allowance: u64::MAX }
}

/// The race the holds are for: one accelerator frees a shard (the last file
/// referencing it was deleted) while another stores it again and commits a file of
/// it. Whichever order they come in, every shard a live file references keeps its
/// bytes, and so does every recorded shard.
pub async fn a_shard_freed_on_one_accelerator_while_stored_on_another_keeps_its_bytes(kind: Kind) {
    let b = Backend::open(kind, Options::default()).await;
    for (id, key) in [("u", 1), ("v", 2)] {
        b.records.create_user(&User { user_id: id.into(), ..user(id, key) }).await.unwrap();
    }
    b.records.create_space("s", b"n", "u", &[3; 32], 0, u64::MAX).await.unwrap();
    b.records.create_space("t", b"n", "v", &[3; 32], 0, u64::MAX).await.unwrap();
    let here = Arc::new(ShardKeeper::new(Arc::clone(&b.records), Arc::clone(&b.shards)));
    let there = Arc::new(ShardKeeper::new(b.another(1024).await, Arc::clone(&b.shards)));
    let (mut lost, mut committed, mut freed) = (Vec::new(), 0, 0);
    for round in 0..ROUNDS {
        let bytes = Bytes::from(format!("shard of round {round}"));
        let x = ShardAddress::of(&bytes);
        let (f, g) = (format!("f{round}"), format!("g{round}"));
        // `u`'s file holds the shard; `u` deletes it, and the shard is freed here…
        here.store(&upload("u", x), bytes.clone()).await.unwrap();
        here.records.commit_file(&file("s", &f, "u", x), Quotas::NONE, u64::MAX).await.unwrap();
        assert!(here.records.delete_file("s", &f, "u").await.unwrap());
        let freeing = {
            let here = Arc::clone(&here);
            tokio::spawn(async move { here.unwind(&Withdrawn::File { space_id: "s".into(), file_id: f }).await })
        };
        // …while `v`, there, uploads the same bytes and commits a file of them,
        // starting a little later from round to round, so that each side comes
        // first in some rounds and they overlap in many.
        let stagger = Duration::from_millis((round % 6) as u64);
        let storing = {
            let there = Arc::clone(&there);
            tokio::spawn(async move {
                tokio::time::sleep(stagger).await;
                there.store(&upload("v", x), bytes).await?;
                there.records.commit_file(&file("t", &g, "v", x), Quotas::NONE, u64::MAX).await
            })
        };
        freed += freeing.await.unwrap().unwrap();
        let commit = match storing.await.unwrap() {
            Ok(_) => "committed",
            // Freed between the upload and the commit: the writer uploads again.
            Err(StoreError::MissingShards { .. }) => "refused",
            Err(err) => panic!("round {round}: {err}"),
        };
        committed += usize::from(commit == "committed");
        // A live file references it, or an upload pins it, or it is gone: if it is
        // recorded, its bytes must be there.
        if b.records.shard_recorded(&x).await.unwrap() && !b.shards.has(&x).await.unwrap() {
            lost.push((round, commit));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {ROUNDS} rounds left their shard recorded without its bytes (round, its commit): {lost:?}",
        lost.len()
    );
    // Both sides did their work in the rounds: the race was run, not avoided.
    assert!(committed > 0 && freed > 0, "{committed} commits, {freed} shards freed");
}
