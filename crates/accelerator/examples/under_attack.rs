//! `scripts/bench`'s "under attack" table: what a signed-in user sees, and what the
//! accelerator holds, at rest and while strangers attack it — 1,000 clients that
//! send half a request and stop, 16 downloads of a 16 MiB shard that nobody reads,
//! and a flood of login challenges.
//!
//! ```text
//! cargo run --release -p coffer-accelerator --example under_attack -- http://127.0.0.1:PORT PID
//! ```
//!
//! Measures, for each phase: `GET /v1/health` and kv `get` latency (p50, p99) for a
//! user of its own, and the accelerator's resident memory and open descriptors (read
//! from `/proc/PID`, sampled through the phase; the peak is reported). Every attack
//! is bounded in count and time and targets only the given loopback address. Prints
//! a markdown table and writes it to `target/bench/attack.md`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffer_core::b64;
use coffer_core::proto::{KvKeyRequest, KvSetRequest, KvValue};
use coffer_core::shard::ShardAddress;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

mod common;
use common::sign_up;

/// How long each phase measures (the slow clients are closed after the 10 s header
/// timeout, so a phase ends before that).
const PHASE: Duration = Duration::from_secs(8);
/// Requests per latency sample set, at least.
const SAMPLES: usize = 400;

/// Latency percentiles (p50, p99, in milliseconds) of sequential calls of `call`
/// for `span` (and at least `SAMPLES` of them); a failed call counts as infinitely slow.
async fn latencies<F, Fut>(span: Duration, mut call: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut times = Vec::new();
    let until = Instant::now() + span;
    while times.len() < SAMPLES || Instant::now() < until {
        let start = Instant::now();
        let ok = call().await;
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        times.push(if ok { elapsed } else { f64::INFINITY });
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// The accelerator's resident memory (MiB) and open descriptors.
fn footprint(pid: u32) -> (f64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    (rss_kib / 1024.0, fds)
}

/// Samples the footprint until `stop`; returns the peaks.
fn sample_peaks(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(f64, usize)> {
    tokio::spawn(async move {
        let (mut rss, mut fds) = (0.0f64, 0usize);
        while !stop.load(Ordering::Relaxed) {
            let (r, f) = footprint(pid);
            rss = rss.max(r);
            fds = fds.max(f);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (rss, fds)
    })
}

/// A connection from `127.0.0.<host>`.
async fn connect_from(server: SocketAddr, host: u8) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from([127, 0, 0, host]), 0))?;
    socket.connect(server).await
}

/// One measured phase.
struct Row {
    /// What ran.
    phase: &'static str,
    /// Health p50, p99 (ms).
    health: (f64, f64),
    /// kv get p50, p99 (ms).
    kv: (f64, f64),
    /// Peak resident memory (MiB).
    rss: f64,
    /// Peak open descriptors.
    fds: usize,
    /// What the attack got, in words.
    note: String,
}

async fn measure(phase: &'static str, http: &reqwest::Client, url: &str, token: &str, pid: u32, note: String) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let peaks = sample_peaks(pid, Arc::clone(&stop));
    let health = latencies(PHASE / 2, || async {
        http.get(format!("{url}/v1/health")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    let key = KvKeyRequest { collection: "bench".into(), id: "k".into() };
    let kv = latencies(PHASE / 2, || async {
        let answer = http.post(format!("{url}/v1/kv/get")).bearer_auth(token).json(&key).send().await;
        answer.is_ok_and(|r| r.status().is_success())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (rss, fds) = peaks.await.unwrap_or((0.0, 0));
    Row { phase, health, kv, rss, fds, note }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(pid)) = (args.next(), args.next().and_then(|p| p.parse::<u32>().ok())) else {
        eprintln!("usage: under_attack URL PID");
        std::process::exit(2);
    };
    let server: SocketAddr = url.trim_start_matches("http://").parse().expect("URL is http://127.0.0.1:PORT");
    assert!(server.ip().is_loopback(), "attacks go to loopback only");
    let http = reqwest::Client::new();
    let token = sign_up(&http, &url).await;
    let set = KvSetRequest {
        collection: "bench".into(),
        id: "k".into(),
        value: KvValue::Plain { json: "1".into(), mac: b64::encode([0u8; 32]) },
    };
    http.post(format!("{url}/v1/kv/set")).bearer_auth(&token).json(&set).send().await.expect("kv set");
    // A 16 MiB shard for the unread downloads.
    let shard: Vec<u8> = (0..16 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let address = ShardAddress::of(&shard);
    let put = http.put(format!("{url}/v1/shards/{address}")).bearer_auth(&token).body(shard).send().await;
    assert!(put.is_ok_and(|r| r.status().is_success()), "shard upload");

    let mut rows = vec![measure("at rest", &http, &url, &token, pid, "—".into()).await];

    // The attacks, all at once, each bounded.
    let deadline = Instant::now() + PHASE * 3;
    let mut slow = Vec::new();
    for n in 0..1000u32 {
        if let Ok(mut stream) = connect_from(server, 2 + (n % 8) as u8).await {
            let _ = stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
            slow.push(stream);
        }
    }
    let mut unread = Vec::new();
    for _ in 0..16 {
        if let Ok(mut stream) = connect_from(server, 10).await {
            let request = format!("GET /v1/shards/{address} HTTP/1.1\r\nHost: x\r\n\r\n");
            let _ = stream.write_all(request.as_bytes()).await;
            unread.push(stream);
        }
    }
    let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let (sent, refused) = (Arc::clone(&sent), Arc::clone(&refused));
            let flood_url = format!("{url}/v1/auth/challenge");
            tokio::spawn(async move {
                let client =
                    reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, 11])).build().expect("client");
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let body = serde_json::json!({ "username": format!("victim{}", n % 50) });
                    if let Ok(answer) = client.post(&flood_url).json(&body).send().await {
                        sent.fetch_add(1, Ordering::Relaxed);
                        if answer.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut row = measure("under attack", &http, &url, &token, pid, String::new()).await;
    let secs = started.elapsed().as_secs_f64();
    row.note = format!(
        "{} slow clients and {} unread 16 MiB downloads open; {:.0} challenges/s sent, {:.0} % refused",
        slow.len(),
        unread.len(),
        sent.load(Ordering::Relaxed) as f64 / secs,
        100.0 * refused.load(Ordering::Relaxed) as f64 / sent.load(Ordering::Relaxed).max(1) as f64,
    );
    rows.push(row);
    for flooder in flooders {
        flooder.abort();
    }
    drop(slow);
    drop(unread);

    let mut table = String::from(
        "| phase | health p50 / p99 (ms) | kv get p50 / p99 (ms) | accelerator RSS peak (MiB) | open descriptors peak | attack |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} | {} | {} |\n",
            r.phase, r.health.0, r.health.1, r.kv.0, r.kv.1, r.rss, r.fds, r.note
        ));
    }
    println!("\n{table}");
    let _ = std::fs::create_dir_all("target/bench");
    let _ = std::fs::write("target/bench/attack.md", format!("# Under attack\n\n{table}"));
}
