//! `scripts/bench`'s "large commit" table: how long another user's kv write waits
//! while one user commits, then deletes, a file of many shards — with the commits
//! and deletes taken in steps (the accelerator as it runs) and in one transaction
//! each (as it ran before, a step as large as the file).
//!
//! ```text
//! cargo run --release -p coffer-accelerator --example big_commit -- [SHARDS [STEP...]]
//! ```
//!
//! Without steps given, compares one transaction with the served step ([`STEP`]).
//!
//! Runs against the SQLite store in a temporary directory, with its durability as
//! served (WAL, `synchronous = FULL`). Another thread writes one kv value after
//! another the whole time; its latencies are split into those at rest and those
//! while the commit or the delete runs. Prints a markdown table and writes it to
//! `target/bench/commit.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use coffer_accelerator::store::sqlite::{STEP, SqliteRecords};
use coffer_accelerator::store::{Credentials, NewFile, Quotas, Records, StoredValue, User, Withdrawn};
use coffer_core::account::KdfParams;
use coffer_core::shard::ShardAddress;

fn user(name: &str) -> User {
    User {
        user_id: format!("id-{name}"),
        username: name.into(),
        credentials: Credentials {
            salt: [0; 16],
            kdf: KdfParams::default(),
            login_public_key: [0; 32],
            wrapped_root: vec![0; 61],
        },
        kv_seq: 0,
        user_public_key: Some([9; 32]),
        recovery: None,
    }
}

/// One kv write's start and its latency.
type Sample = (Instant, Duration);

/// Writes kv values as `id-bob`, one after another, until `stop`.
fn writer(db: Arc<dyn Records>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Sample>> {
    tokio::spawn(async move {
        let value = StoredValue::Sealed(vec![7; 100]);
        let mut samples = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            db.kv_set("id-bob", "c", &format!("k{}", i % 64), &value, u64::MAX).await.expect("kv set");
            samples.push((start, start.elapsed()));
            i += 1;
        }
        samples
    })
}

/// p50, p99 and max in milliseconds of the latencies of writes that started in `span`.
fn spread(samples: &[Sample], span: (Instant, Instant)) -> String {
    let mut ms: Vec<f64> =
        samples.iter().filter(|(at, _)| *at >= span.0 && *at < span.1).map(|(_, d)| d.as_secs_f64() * 1e3).collect();
    if ms.is_empty() {
        return "no write started".into();
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!("{:.1} / {:.1} / {:.1} ({} writes)", at(0.5), at(0.99), ms[ms.len() - 1], ms.len())
}

/// One run: a fresh store taking `step` shards per transaction.
async fn run(shards: u32, step: usize) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let db: Arc<dyn Records> = Arc::new(SqliteRecords::open(dir.path(), 1000).expect("open").with_step(step));
    for name in ["ada", "bob"] {
        db.create_user(&user(name)).await.expect("user");
    }
    db.create_space("s", b"name", "id-ada", &[3; 32], 0, u64::MAX).await.expect("space");
    let mut addresses: Vec<ShardAddress> = (0..shards).map(|i| ShardAddress::of(&i.to_le_bytes())).collect();
    // The commit route lists them sorted, so each step's shards are neighbours in
    // every index.
    addresses.sort_unstable();
    for address in &addresses {
        db.record_upload("id-ada", address, 1000, 0, u64::MAX).await.expect("upload");
    }
    let file = NewFile {
        space_id: "s".into(),
        file_id: "f".into(),
        sealed_record: vec![1; 1000],
        shards: addresses.into(),
        max_shard_bytes: u64::MAX,
        created_by: "id-ada".into(),
        created_at_ms: 1,
        epoch: 0,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let bob = writer(Arc::clone(&db), Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rest = (Instant::now() - Duration::from_secs(1), Instant::now());
    let started = Instant::now();
    db.commit_file(&file, Quotas::NONE, u64::MAX).await.expect("commit");
    let committed = Instant::now();
    db.delete_file("s", "f", "id-ada").await.expect("delete");
    let what = Withdrawn::File { space_id: "s".into(), file_id: "f".into() };
    let mut freed = 0;
    loop {
        let step = db.unwind(&what, db.step()).await.expect("unwind");
        freed += db.forget_shards(&step.freed, u64::MAX).await.expect("forget").len();
        if step.done {
            break;
        }
    }
    let deleted = Instant::now();
    assert_eq!(freed, shards as usize, "every shard freed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = bob.await.expect("writer");
    let mode = if step >= shards as usize { "one transaction (before)".to_owned() } else { format!("steps of {step}") };
    format!(
        "| {mode} | {:.2} s | {:.2} s | {} | {} | {} |",
        (committed - started).as_secs_f64(),
        (deleted - committed).as_secs_f64(),
        spread(&samples, rest),
        spread(&samples, (started, committed)),
        spread(&samples, (committed, deleted)),
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let shards: u32 = args.next().map(|n| n.parse().expect("a shard count")).unwrap_or(100_000);
    let mut steps: Vec<usize> = args.map(|n| n.parse().expect("a step")).collect();
    if steps.is_empty() {
        steps = vec![shards as usize, STEP];
    }
    let mut table = format!(
        "A file of {shards} shards committed, then deleted (its shards freed), while another user writes kv values\n\
         one after another; their latency in ms, p50 / p99 / max.\n\n\
         | commits and deletes in | commit | delete | kv set at rest | kv set during the commit | kv set during the delete |\n\
         |---|---|---|---|---|---|\n"
    );
    for step in steps {
        table.push_str(&run(shards, step).await);
        table.push('\n');
    }
    println!("{table}");
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write("target/bench/commit.md", table).expect("write the table");
}
