//! The accelerator on the open internet: each attack a stranger (no account) or a
//! free account can make, through real sockets, asserting what must hold — other
//! users are still served, memory stays bounded, the attacker gets a coded answer
//! or a closed socket, nothing is lost. Deadlines are generous liveness bounds,
//! never timings.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use coffer_accelerator::Config;
use coffer_core::ErrorCode;
use coffer_core::proto::storage::{FileListResponse, ShardsRequest};
use coffer_core::shard::ShardAddress;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Limits short enough for a test to see them act.
fn short(config: &mut Config) {
    config.limits.header_read_timeout = Duration::from_secs(1);
    config.limits.write_stall_timeout = Duration::from_secs(1);
    config.limits.request_timeout = Duration::from_secs(2);
}

fn port(server: &TestServer) -> u16 {
    server.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A TCP connection to the server from loopback address `127.0.0.<host>`, so that a
/// test can play many clients on one machine.
async fn connect_from(server: &TestServer, host: u8) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from([127, 0, 0, host]), 0))?;
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port(server)))).await
}

/// Reads until the peer closes or `PATIENCE` passes; returns what arrived and
/// whether the peer closed.
async fn drain(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// The process's resident memory in bytes (the server runs in this process).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn a_thousand_half_sent_requests_neither_starve_others_nor_stay() {
    let server = TestServer::start(short).await;
    assert!(server.api().healthy().await);
    let mut slow = Vec::new();
    for n in 0..1000 {
        // From eight addresses, under the per-address cap.
        let mut stream = connect_from(&server, 2 + (n % 8) as u8).await.expect("connects");
        stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(stream);
    }
    // Someone else is served at once, while all 1,000 hang.
    let health = tokio::time::timeout(PATIENCE, server.api().healthy()).await;
    assert!(health.expect("health answers while 1,000 clients hang"));
    // And the slow ones are closed once their headers are overdue.
    for stream in &mut slow {
        let (_, closed) = drain(stream).await;
        assert!(closed, "a half-sent request is closed after the header timeout");
    }
    assert!(server.api().healthy().await);
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = TestServer::start(|c| c.limits.max_connections_per_address = 20).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut stream = connect_from(&server, 9).await.unwrap();
        stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "kept-alive connection {n}");
        held.push(stream);
    }
    let mut refused = connect_from(&server, 9).await.unwrap();
    let (answer, closed) = drain(&mut refused).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed && answer.starts_with("HTTP/1.1 429") && answer.contains("RateLimited"), "{answer}");
    // Another address is still served; freeing one place lets the first in again.
    assert!(server.api().healthy().await);
    held.pop();
    eventually("a freed place is reused", || async {
        let mut s = connect_from(&server, 9).await.unwrap();
        s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        String::from_utf8_lossy(&drain(&mut s).await.0).starts_with("HTTP/1.1 200")
    })
    .await;
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_request_timeout() {
    let server = TestServer::start(short).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let mut stream = connect_from(&server, 1).await.unwrap();
    let head = format!(
        "POST /v1/kv/set HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"collection\":",
        ada.token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, closed) = drain(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "the connection is closed");
    assert!(answer.is_empty() || answer.contains("\"Network\""), "{answer}");
    assert!(api.healthy().await);
}

/// A stored shard of `len` random bytes, and its address.
async fn stored_shard(api: &Api, account: &Account, len: usize) -> ShardAddress {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).unwrap();
    let address = ShardAddress::of(&bytes);
    let (status, _) = api.put_shard(&address.to_hex(), Some(account.token()), bytes).await;
    assert_eq!(status, 204);
    address
}

#[tokio::test]
async fn unread_downloads_hold_little_and_are_closed() {
    const MIB: usize = 1024 * 1024;
    let server = TestServer::start(short).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let address = stored_shard(&api, &ada, 16 * MIB).await;

    let before = rss();
    let mut unread = Vec::new();
    for _ in 0..16 {
        let mut stream = connect_from(&server, 3).await.unwrap();
        let request = format!("GET /v1/shards/{address} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        unread.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss().saturating_sub(before);
    // Reading whole shards into memory grew the server by 16 × 16 MiB.
    assert!(grown < 64 * MIB as u64, "16 unread 16 MiB downloads grew the server by {} MiB", grown / MIB as u64);
    // Nobody reads: after the write-stall timeout each is closed short of 16 MiB.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for stream in &mut unread {
        let (got, closed) = drain(stream).await;
        assert!(closed && got.len() < 16 * MIB, "a stalled download is closed ({} bytes sent)", got.len());
    }
    // A reader that reads gets the shard whole, with the headers that keep a
    // browser from treating it as a page.
    let response = api.http.get(format!("{}/v1/shards/{address}", server.url)).send().await.unwrap();
    let h = response.headers().clone();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-disposition"], "attachment");
    assert!(h["content-security-policy"].to_str().unwrap().contains("sandbox"));
    assert_eq!(h["content-length"], (16 * MIB).to_string());
    let body = response.bytes().await.unwrap();
    assert_eq!(ShardAddress::of(&body), address);
}

#[tokio::test]
async fn a_batch_is_sized_before_a_byte_is_sent() {
    let server = TestServer::start(|c| c.limits.max_fetch_bytes = 8 * 1024 * 1024).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let address = stored_shard(&api, &ada, 1024 * 1024).await;
    // 256 times the same 1 MiB shard: refused whole, nothing streamed.
    let (status, body) = api.post("/v1/shards/fetch", None, &ShardsRequest { addresses: vec![address; 256] }).await;
    Api::expect_error((status, body), ErrorCode::TooLarge);
    // Within the limit, repeats are answered as asked.
    let shards = api.fetch_shards(&[address, address, ShardAddress::of(b"absent")]).await;
    assert_eq!(shards.iter().map(Option::is_some).collect::<Vec<_>>(), [true, true, false]);
    assert_eq!(shards[0], shards[1]);
}

#[tokio::test]
async fn uploads_need_a_length_and_a_place() {
    let server = TestServer::start(|c| c.limits.max_uploads_per_user = 1).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    // A body without a length is refused before it is read.
    let mut stream = connect_from(&server, 1).await.unwrap();
    let address = ShardAddress::of(b"x");
    let head = format!(
        "PUT /v1/shards/{address} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        ada.token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&drain(&mut stream).await.0).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("Content-Length"), "{answer}");

    // A body declaring more than the route takes is refused before a byte of it is read.
    let mut stream = connect_from(&server, 1).await.unwrap();
    let head = format!(
        "PUT /v1/shards/{address} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 4294967296\r\nConnection: close\r\n\r\n",
        ada.token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&drain(&mut stream).await.0).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("TooLarge"), "{answer}");
    // So is a stranger's, before any room is held for it.
    let mut stream = connect_from(&server, 1).await.unwrap();
    let head =
        format!("PUT /v1/shards/{address} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&drain(&mut stream).await.0).into_owned();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // One upload in flight (its body still coming): a second one waits its turn.
    let mut first = connect_from(&server, 1).await.unwrap();
    let head = format!(
        "PUT /v1/shards/{address} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\n\r\n",
        ada.token()
    );
    first.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = api.put_shard(&address.to_hex(), Some(ada.token()), b"x".to_vec()).await;
    Api::expect_error((status, body), ErrorCode::RateLimited);
    first.write_all(b"x").await.unwrap();
    let answer = String::from_utf8_lossy(&drain(&mut first).await.0).into_owned();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let (status, _) = api.put_shard(&address.to_hex(), Some(ada.token()), b"x".to_vec()).await;
    assert_eq!(status, 204);
}

/// Sends a request head declaring a body of `len` bytes, and none of the body.
async fn half_sent(server: &TestServer, path: &str, token: Option<&str>, len: usize) -> TcpStream {
    let mut stream = connect_from(server, 1).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn answer_of(stream: &mut TcpStream) -> String {
    String::from_utf8_lossy(&drain(stream).await.0).into_owned()
}

#[tokio::test]
async fn every_body_waits_for_room_and_strangers_send_only_small_ones() {
    let server = TestServer::start(|c| c.limits.body_buffer_bytes = 64 * 1024).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;

    // A stranger's sign-in body is small, refused before a byte of it is read.
    let mut stream = half_sent(&server, "/v1/auth/challenge", None, 9 * 1024).await;
    let answer = answer_of(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("TooLarge"), "{answer}");
    // A stranger's body on a signed-in route is refused before it is read.
    let mut stream = half_sent(&server, "/v1/kv/set", None, 1000).await;
    assert!(answer_of(&mut stream).await.starts_with("HTTP/1.1 401"));

    // Ada's half-sent body of 60 KiB holds 60 of the 64 KiB: bob's 10 KiB value
    // waits for room (a request with no body does not), and goes in once hers ends.
    let mut held = half_sent(&server, "/v1/kv/set", Some(ada.token()), 60 * 1024).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bob_set = {
        let api = server.api();
        let value = format!("\"{}\"", "v".repeat(10 * 1024));
        tokio::spawn(async move { bob.set(&api, "c", "i", &value, true).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!bob_set.is_finished(), "bob's body waits while ada's holds the budget");
    let (status, _) = api.get("/v1/spaces", Some(ada.token())).await;
    assert_eq!(status, 200, "a request with no body needs no room");
    held.write_all(&vec![b' '; 60 * 1024]).await.unwrap();
    assert!(answer_of(&mut held).await.starts_with("HTTP/1.1 400"), "ada's blank body is not JSON");
    let seq = tokio::time::timeout(PATIENCE, bob_set).await.expect("bob's value goes in").unwrap();
    assert_eq!(seq, 1);
    assert!(api.healthy().await);
}

#[tokio::test]
async fn feed_sockets_are_capped_before_and_after_auth() {
    let server = TestServer::start(|c| {
        c.limits.max_unauthenticated_sockets = 4;
        c.limits.max_feeds_per_user = 2;
    })
    .await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;

    // One huge frame before auth: the socket is closed, the server carries on.
    let mut huge = Feed::connect(&server).await;
    let frame = tokio_tungstenite::tungstenite::Message::Binary(vec![0u8; 1024 * 1024].into());
    let _ = futures_util::SinkExt::send(&mut huge.ws, frame).await;
    assert_eq!(huge.next().await, None, "a frame over the limit closes the socket");

    // Strangers may hold only so many sockets that never authenticate.
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(Feed::connect(&server).await);
    }
    let refused = tokio_tungstenite::connect_async(server.feed_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // Authenticating frees the place.
    waiting[0].auth(ada.token(), None).await;
    assert!(matches!(waiting[0].next().await, Some(coffer_core::proto::ServerFrame::Ready { .. })));
    let (mut second, _) = Feed::open(&server, ada.token(), None).await;
    // A user's third feed is refused; the first two still get changes.
    let mut third = Feed::connect(&server).await;
    third.auth(ada.token(), None).await;
    third.expect_error_and_close(ErrorCode::RateLimited).await;
    ada.set(&api, "c", "k", "1", false).await;
    assert_eq!(second.change().await.id, "k");
    assert_eq!(waiting[0].change().await.id, "k");
}

#[tokio::test]
async fn a_challenge_flood_is_limited_and_others_are_served() {
    // The default burst, refilled slowly: at the default 10 a second, a slow machine
    // (a CI run) earned a fresh token between the flood and the check below.
    let server = TestServer::start(|c| c.limits.auth_per_second_per_address = 0.05).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let mut limited = 0;
    for n in 0..400 {
        let (status, body) =
            api.post("/v1/auth/challenge", None, &serde_json::json!({ "username": format!("u{n}") })).await;
        if status == 429 {
            assert_eq!(body["code"], "RateLimited");
            limited += 1;
        }
    }
    assert!(limited > 200, "a flood from one address is limited ({limited} of 400 refused)");
    // Retry-After says when to come back.
    let response =
        api.http.post(format!("{}/v1/auth/challenge", server.url)).json(&serde_json::json!({"username": "x"})).send();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    // A signed-in user is not limited by it.
    ada.set(&api, "c", "k", "1", false).await;
    assert_eq!(ada.get(&api, "c", "k").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn failed_logins_slow_down_but_never_lock_the_owner_out_for_long() {
    let server = TestServer::start(|c| {
        c.limits.free_login_failures = 3;
        c.limits.login_backoff_base = Duration::from_millis(200);
        c.limits.login_backoff_max = Duration::from_millis(800);
    })
    .await;
    let api = server.api();
    sign_up(&api, "ada", "right").await;
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(sign_in(&api, "ada", "wrong").await.unwrap_err().code);
    }
    assert_eq!(&outcomes[..3], [ErrorCode::Unauthorized; 3], "the first failures cost nothing");
    assert!(outcomes[4..].iter().all(|c| *c == ErrorCode::RateLimited), "{outcomes:?}");
    // An unknown username fails like a wrong password, and is limited the same way.
    let unknown: Vec<_> = futures_util::future::join_all((0..5).map(|_| sign_in(&api, "nobody", "x"))).await;
    assert!(unknown.iter().all(|r| r.as_ref().is_err_and(|e| e.code != ErrorCode::Internal)));
    // The owner waits at most the cap, then signs in.
    tokio::time::sleep(Duration::from_millis(900)).await;
    sign_in(&api, "ada", "right").await.expect("the owner gets in after the wait");
    // Success clears the count.
    assert_eq!(sign_in(&api, "ada", "wrong").await.unwrap_err().code, ErrorCode::Unauthorized);
}

#[tokio::test]
async fn sessions_per_user_are_capped_oldest_first() {
    let server = TestServer::start(|c| c.limits.max_sessions_per_user = 3).await;
    let api = server.api();
    let first = sign_up(&api, "ada", "pw").await;
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(sign_in(&api, "ada", "pw").await.unwrap().token);
    }
    Api::expect_error(api.get("/v1/auth/session", Some(first.token())).await, ErrorCode::Unauthorized);
    for token in &later {
        assert_eq!(api.get("/v1/auth/session", Some(token)).await.0, 200);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    ada.set(&api, "c", "k", "1", false).await;
    stored_shard(&api, &ada, 1000).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(server.dir.path()), 0o700);
    let mut files = 0;
    let mut dirs = vec![server.dir.path().to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    assert!(files >= 3, "database, secret and a shard were checked ({files})");
}

#[tokio::test]
async fn the_demo_pages_send_a_strict_csp() {
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "<h1>demo</h1>").unwrap();
    let www_path = www.path().to_owned();
    let server = TestServer::start(move |c| c.www_dir = Some(www_path)).await;
    let page = reqwest::get(format!("{}/", server.url)).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for directive in ["default-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("'unsafe-inline'") && !csp.contains(" 'unsafe-eval'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
}

/// A free account with a small allowance, and shards that are collected quickly.
fn metered(config: &mut Config) {
    config.user_allowance_bytes = 256 * 1024;
    config.space_quota_bytes = 200 * 1024;
    config.shard_grace = Duration::from_secs(2);
    config.gc_interval = Duration::from_millis(100);
}

/// A chunk of `len` random bytes as its six shards.
fn random_shards(len: usize) -> Vec<(ShardAddress, Vec<u8>)> {
    let mut plaintext = vec![0u8; len];
    getrandom::fill(&mut plaintext).unwrap();
    shards_of(&plaintext)
}

#[tokio::test]
async fn uncommitted_uploads_are_metered_and_pinned_only_by_their_uploader() {
    let server = TestServer::start(metered).await;
    let api = server.api();
    let eve = sign_up(&api, "eve", "pw").await;
    let bob = sign_up(&api, "bob", "pw").await;
    // Uploading without committing costs the uploader: free hosting ends at the allowance.
    let mut refused = None;
    for _ in 0..20 {
        for (address, bytes) in random_shards(64 * 1024) {
            let (status, body) = api.put_shard(&address.to_hex(), Some(eve.token()), bytes).await;
            if status != 204 {
                refused = Some(body);
                break;
            }
        }
    }
    let refused = refused.expect("uploads past the allowance are refused");
    assert_eq!(refused["code"], "QuotaExceeded");
    assert!(refused["message"].as_str().unwrap().contains("user allowance"), "{refused}");

    // Another user asking about eve's shards neither sees them nor keeps them alive.
    let parked = random_shards(1000);
    let bob_parked = random_shards(1000);
    bob.upload(&api, &bob_parked).await;
    let eve2 = sign_up(&api, "eve2", "pw").await;
    eve2.upload(&api, &parked).await;
    assert_eq!(bob.missing(&api, &addresses(&parked)).await, addresses(&parked), "not bob's uploads");
    let space = bob.create_space(&api).await;
    let err = bob.commit(&api, &space, &addresses(&parked)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput, "bob cannot pin eve2's shards by committing them");
    eventually("uploads nobody committed are collected at their deadline", || async {
        bob.missing(&api, &addresses(&parked)).await;
        !api.has_shard(&parked[0].0).await
    })
    .await;
    // And the allowance is given back with them.
    eventually("expired uploads are refunded", || async {
        let (status, _) = api.put_shard(&parked[1].0.to_hex(), Some(eve.token()), parked[1].1.clone()).await;
        status == 204
    })
    .await;
}

#[tokio::test]
async fn the_allowance_spans_every_space_file_and_value() {
    let server = TestServer::start(metered).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    // Each space is under its own quota; together they pass the user's allowance.
    let mut refusal = None;
    'spaces: for _ in 0..4 {
        let space = ada.create_space(&api).await;
        let shards = random_shards(100 * 1024);
        for (address, bytes) in &shards {
            let (status, body) = api.put_shard(&address.to_hex(), Some(ada.token()), bytes.clone()).await;
            if status != 204 {
                refusal = Some(body["message"].as_str().unwrap_or_default().to_owned());
                break 'spaces;
            }
        }
        if let Err(err) = ada.commit(&api, &space, &addresses(&shards)).await {
            assert_eq!(err.code, ErrorCode::QuotaExceeded);
            refusal = Some(err.message);
            break;
        }
    }
    let refusal = refusal.expect("spaces do not multiply the allowance");
    assert!(refusal.contains("user allowance"), "{refusal}");

    // Files without shards still cost their records.
    let bob = sign_up(&api, "bob", "pw").await;
    let space = bob.create_space(&api).await;
    let mut empty_files = 0;
    while bob.commit(&api, &space, &[]).await.is_ok() {
        empty_files += 1;
        assert!(empty_files < 2000, "zero-shard files are never free");
    }
    // kv values are metered too.
    let cy = sign_up(&api, "cy", "pw").await;
    let value = format!("\"{}\"", "x".repeat(100 * 1024));
    let mut stored = 0;
    loop {
        let req = coffer_core::proto::KvSetRequest {
            collection: "c".into(),
            id: format!("k{stored}"),
            value: coffer_core::proto::KvValue::Plain { json: value.clone(), mac: coffer_core::b64::encode([0u8; 32]) },
        };
        let (status, body) = api.post("/v1/kv/set", Some(cy.token()), &req).await;
        if status != 200 {
            assert_eq!(body["code"], "QuotaExceeded", "{body}");
            break;
        }
        stored += 1;
        assert!(stored < 10, "kv is metered");
    }
    // Rewriting one key costs one value, however often.
    let (status, body) = api
        .post(
            "/v1/kv/set",
            Some(cy.token()),
            &coffer_core::proto::KvSetRequest {
                collection: "c".into(),
                id: "k0".into(),
                value: coffer_core::proto::KvValue::Plain {
                    json: "1".into(),
                    mac: coffer_core::b64::encode([0u8; 32]),
                },
            },
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_key_rewritten_many_times_keeps_one_change() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    for n in 0..200 {
        ada.set(&api, "c", "k", &format!("{n}"), false).await;
    }
    let (mut feed, head) = Feed::open(&server, ada.token(), Some(0)).await;
    assert_eq!(head, 200);
    let only = feed.change().await;
    assert_eq!((only.seq, only.id.as_str()), (200, "k"), "the replay is the key's latest change alone");
    ada.set(&api, "c", "j", "1", false).await;
    assert_eq!(feed.change().await.seq, 201);
}

#[tokio::test]
async fn a_hundred_thousand_ids_come_a_page_at_a_time() {
    let server = TestServer::start_embedded(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    // 100,000 keys, written straight into the database (100,000 HTTP writes would
    // only make the test slow); the accelerator reads them as its own.
    {
        let mut db = rusqlite::Connection::open(server.dir.path().join("accelerator.sqlite3")).unwrap();
        db.busy_timeout(Duration::from_secs(30)).unwrap();
        let tx = db.transaction().unwrap();
        let mut insert = tx
            .prepare("INSERT INTO kv (user_id, collection, id, plain_json, plain_mac) VALUES (?1, 'c', ?2, '1', ?3)")
            .unwrap();
        for n in 0..100_000 {
            insert.execute(rusqlite::params![ada.user_id(), format!("k{n:06}"), [0u8; 32]]).unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }
    let list = |after: Option<String>, limit: Option<u32>| {
        let req = coffer_core::proto::KvListRequest {
            collection: "c".into(),
            page: coffer_core::proto::PageQuery { after, limit },
        };
        let api = api.clone();
        let token = ada.token().to_owned();
        async move { api.post("/v1/kv/list", Some(&token), &req).await }
    };
    let (mut seen, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let (status, body) = list(after, None).await;
        assert_eq!(status, 200, "{body}");
        let page: coffer_core::proto::KvListResponse = serde_json::from_value(body).unwrap();
        assert!(page.ids.len() <= coffer_core::proto::MAX_PAGE_ENTRIES as usize, "a page is bounded");
        seen.extend(page.ids);
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 100_000, "every id once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
    assert_eq!(pages, 100);
    // A smaller page on request; a larger one, or a forged cursor, is refused.
    let (_, body) = list(None, Some(10)).await;
    assert_eq!(body["ids"].as_array().unwrap().len(), 10);
    Api::expect_error(list(None, Some(1001)).await, ErrorCode::InvalidInput);
    Api::expect_error(list(None, Some(0)).await, ErrorCode::InvalidInput);
    let space = ada.create_space(&api).await;
    Api::expect_error(api.get(&space.path("/files?after=nonsense"), Some(ada.token())).await, ErrorCode::InvalidInput);
    Api::expect_error(api.get("/v1/spaces?limit=x", Some(ada.token())).await, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn spaces_members_and_files_are_paged() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let mut committed = Vec::new();
    for _ in 0..5 {
        committed.push(ada.commit(&api, &space, &[]).await.unwrap().file_id);
        ada.create_space(&api).await;
    }
    let walk = |first: String, field: &'static str| {
        let api = api.clone();
        let token = ada.token().to_owned();
        async move {
            let (mut all, mut path) = (Vec::new(), first.clone());
            loop {
                let (status, body) = api.get(&path, Some(&token)).await;
                assert_eq!(status, 200, "{body}");
                let entries = body[field].as_array().unwrap().clone();
                assert!(entries.len() <= 2);
                all.extend(entries);
                match body["next"].as_str() {
                    Some(next) => path = format!("{first}&after={next}"),
                    None => return all,
                }
            }
        }
    };
    let files = walk(format!("{}?limit=2", space.path("/files")), "files").await;
    let ids: Vec<String> = files.iter().map(|f| f["fileId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, committed, "oldest first, each once");
    assert_eq!(walk("/v1/spaces?limit=2".into(), "spaces").await.len(), 6);
    assert_eq!(walk(format!("{}?limit=2", space.path("/members")), "members").await.len(), 1);
}

#[tokio::test]
async fn a_commit_lists_no_more_than_its_declared_size_needs() {
    let server = TestServer::start(|_| {}).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let shards = random_shards(100 * 1024);
    ada.upload(&api, &shards).await;
    let commit = |req: coffer_core::proto::storage::CommitFileRequest| {
        let (api, token, path) = (api.clone(), ada.token().to_owned(), space.path("/files"));
        async move { api.post(&path, Some(&token), &req).await }
    };
    let small = |size: u64| coffer_core::proto::storage::CommitFileRequest {
        size,
        chunk_size: 1024,
        data_shards: 4,
        parity_shards: 2,
        ..commit_request(&addresses(&shards))
    };
    // An empty file needs no shard; one chunk of 1 KiB needs six small ones.
    let msg = Api::expect_error(commit(small(0)).await, ErrorCode::InvalidInput);
    assert!(msg.contains("at most 0 shards"), "{msg}");
    let msg = Api::expect_error(commit(small(1000)).await, ErrorCode::InvalidInput);
    assert!(msg.contains("more than the"), "{msg}");
    // Parameters outside the format's bounds are refused.
    let bad = coffer_core::proto::storage::CommitFileRequest { chunk_size: 5, ..small(1000) };
    Api::expect_error(commit(bad).await, ErrorCode::InvalidInput);
    // Declared as what it is, it commits.
    let honest =
        coffer_core::proto::storage::CommitFileRequest { size: 100 * 1024, chunk_size: 4 * 1024 * 1024, ..small(0) };
    let (status, body) = commit(honest).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn large_commits_deletes_and_space_ends_go_in_steps() {
    // Four shards per transaction: every operation below takes several.
    let server = TestServer::start(|c| c.shards_per_step = 4).await;
    let api = server.api();
    let ada = sign_up(&api, "ada", "pw").await;
    let space = ada.create_space(&api).await;
    let shards: Vec<_> = (0..4).flat_map(|_| random_shards(4096)).collect();
    ada.upload(&api, &shards).await;
    let listed = addresses(&shards);

    // One shard never uploaded: refused before the first step, the uploads kept.
    let mut more = listed.clone();
    more.push(ShardAddress::of(b"never uploaded"));
    let err = ada.commit(&api, &space, &more).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput, "{}", err.message);
    assert!(ada.missing(&api, &listed).await.is_empty(), "the uploads are still pinned");

    let file = ada.commit(&api, &space, &listed).await.unwrap();
    assert_eq!(file.stored_bytes, total_len(&shards));
    let answer = ada.get_json::<FileListResponse>(&api, &space.path("/files")).await.unwrap();
    assert_eq!(answer.files.len(), 1);
    for address in &listed {
        assert!(api.has_shard(address).await);
    }
    assert!(ada.delete_file(&api, &space, &file.file_id).await.unwrap());
    for address in &listed {
        assert!(!api.has_shard(address).await, "freed before the delete answered");
    }

    // The last member leaves a space with files: all of it goes before the answer.
    let other = ada.create_space(&api).await;
    let shards: Vec<_> = (0..3).flat_map(|_| random_shards(4096)).collect();
    ada.upload(&api, &shards).await;
    ada.commit(&api, &other, &addresses(&shards)[..6]).await.unwrap();
    ada.commit(&api, &other, &addresses(&shards)[6..]).await.unwrap();
    ada.post_empty(&api, &other.path("/leave"), &serde_json::json!({})).await.unwrap();
    for (address, _) in &shards {
        assert!(!api.has_shard(address).await, "freed before leaving answered");
    }
    let (status, _) = api.get(&other.path("/files"), Some(ada.token())).await;
    assert_eq!(status, 403, "the space is gone");
    assert!(api.healthy().await);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_limited_on_its_own() {
    let proxy: IpAddr = [127, 0, 0, 1].into();
    let server = TestServer::start(move |c| {
        c.limits.trusted_proxies = vec![proxy];
        c.limits.max_connections_per_address = 2;
        // A burst of 20, then one a minute: however slowly the machine sends the
        // flood, most of it is refused.
        c.limits.auth_burst_per_address = 20;
        c.limits.auth_per_second_per_address = 1.0 / 60.0;
    })
    .await;
    let challenge = |forwarded: &'static str, username: String| {
        let (http, url) = (reqwest::Client::new(), server.url.clone());
        async move {
            let request = http.post(format!("{url}/v1/auth/challenge")).header("x-forwarded-for", forwarded);
            request.json(&serde_json::json!({ "username": username })).send().await.unwrap().status()
        }
    };
    // One client's flood, forwarded by the proxy, is limited...
    let mut limited = 0;
    for n in 0..200 {
        limited += usize::from(challenge("198.51.100.9, 203.0.113.7", format!("u{n}")).await == 429);
    }
    assert!(limited >= 170, "the forwarded client is limited ({limited} of 200)");
    // ...and another client behind the same proxy is not.
    assert_eq!(challenge("203.0.113.8", "fresh".into()).await, 200);

    // The proxy's connections are not capped per address; another address's are.
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_from(&server, 1).await.unwrap();
        stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200", "the proxy's connection is served");
        open.push(stream);
    }
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from(&server, 5).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect_from(&server, 5).await.unwrap();
    let answer = String::from_utf8_lossy(&drain(&mut third).await.0).into_owned();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
}
