//! Shard holds ([`Files::hold_shards`]) across accelerators: what they keep apart,
//! and what they do not.
//!
//! [`Files::hold_shards`]: coffer_accelerator::store::Files::hold_shards

use std::sync::Arc;
use std::time::Duration;

use coffer_accelerator::store::StoreError;
use coffer_core::shard::ShardAddress;
use tokio::time::timeout;

use super::{Backend, Kind, Options};

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
