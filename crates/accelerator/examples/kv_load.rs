//! `scripts/bench`'s kv load table: how many kv writes and reads per second the
//! accelerator answers with many clients in flight, and their latency.
//!
//! ```text
//! cargo run --release -p coffer-accelerator --example kv_load -- CLIENTS SECONDS LABEL=URL...
//! ```
//!
//! Each `LABEL=URL` is an accelerator to load in turn (one per backend, say), named
//! `LABEL` in the table.
//!
//! `CLIENTS` (64) tasks, each with a request always in flight, on keep-alive
//! connections, spread over 8 users; first `set` (a plain value of ~100 bytes, each
//! to a key of its own), then `get`, each for `SECONDS` (10). A set is answered only
//! once it is durable, so the set rate is the store's commit rate. Prints a markdown
//! table and writes it to `target/bench/kv-load.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_core::b64;
use coffer_core::proto::{KvKeyRequest, KvSetRequest, KvValue};

mod common;
use common::{quantile, sign_up};

/// Users the clients are spread over.
const USERS: usize = 8;

#[derive(Clone, Copy)]
enum Op {
    Set,
    Get,
}

/// Runs `clients` loops of `op` for `span`; returns requests per second, p50 and
/// p99 latency in ms, and how many failed.
async fn load(http: &reqwest::Client, url: &str, tokens: &[String], clients: usize, span: Duration, op: Op) -> String {
    let until = Instant::now() + span;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, url, token) = (http.clone(), url.to_owned(), tokens[client % tokens.len()].clone());
        tasks.push(tokio::spawn(async move {
            let (mut times, mut failed, mut n) = (Vec::new(), 0usize, 0u64);
            while Instant::now() < until {
                let id = format!("c{client}-{}", n % 1000);
                n += 1;
                let start = Instant::now();
                let request = match op {
                    Op::Set => {
                        let value = KvValue::Plain {
                            json: format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(80)),
                            mac: b64::encode([0u8; 32]),
                        };
                        http.post(format!("{url}/v1/kv/set")).json(&KvSetRequest {
                            collection: "load".into(),
                            id,
                            value,
                        })
                    }
                    Op::Get => {
                        http.post(format!("{url}/v1/kv/get")).json(&KvKeyRequest { collection: "load".into(), id })
                    }
                };
                let ok = request.bearer_auth(&token).send().await.is_ok_and(|r| r.status().is_success());
                times.push(start.elapsed().as_secs_f64() * 1e3);
                failed += usize::from(!ok);
            }
            (times, failed)
        }));
    }
    let (mut times, mut failed) = (Vec::new(), 0);
    for task in tasks {
        let (t, f) = task.await.expect("client task");
        times.extend(t);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let name = match op {
        Op::Set => "set",
        Op::Get => "get",
    };
    format!(
        "| {name} | {clients} | {:.0} | {:.1} | {:.1} | {failed} |",
        times.len() as f64 / elapsed,
        quantile(&times, 0.5),
        quantile(&times, 0.99)
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map(|n| n.parse().expect("a client count")).unwrap_or(64);
    let span = Duration::from_secs(args.next().map(|n| n.parse().expect("seconds")).unwrap_or(10));
    let targets: Vec<(String, String)> = args
        .map(|target| {
            let (label, url) = target.split_once('=').expect("LABEL=URL");
            (label.to_owned(), url.to_owned())
        })
        .collect();
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().expect("http client");
    let mut table = String::from(
        "kv requests with many clients in flight, each a request at a time on a keep-alive connection.\n\n\
         | backend | op | clients | per second | p50 ms | p99 ms | failed |\n|---|---|---|---|---|---|---|\n",
    );
    for (label, url) in &targets {
        let mut tokens = Vec::new();
        for _ in 0..USERS {
            tokens.push(sign_up(&http, url).await);
        }
        let tokens = Arc::new(tokens);
        for op in [Op::Set, Op::Get] {
            table.push_str(&format!("| {label} {}", load(&http, url, &tokens, clients, span, op).await));
            table.push('\n');
        }
    }
    println!("{table}");
    std::fs::create_dir_all("target/bench").expect("target/bench");
    std::fs::write("target/bench/kv-load.md", table).expect("write the table");
}
