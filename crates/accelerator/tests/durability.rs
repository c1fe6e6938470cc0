//! What the accelerator answered is on disk: the built binary is killed with
//! SIGKILL while writes are in flight, started again on the same data directory,
//! and every write it had answered is there.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// Starts the accelerator binary on a free port; returns it and its URL once it answers.
async fn spawn(dir: &std::path::Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_accelerator"))
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the accelerator");
    let url = format!("http://127.0.0.1:{port}");
    let api = Api { http: reqwest::Client::new(), url: url.clone() };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !api.http.get(format!("{url}/v1/health")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(tokio::time::Instant::now() < deadline, "the accelerator did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answered_write_survives_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn(dir.path()).await;
    let api = Api { http: reqwest::Client::new(), url };
    let ada = Arc::new(sign_up(&api, "ada", "pw").await);

    // 32 writers, each setting keys of its own one after another; each answered
    // write is noted.
    let answered = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..32 {
        let (api, ada, answered) = (api.clone(), Arc::clone(&ada), Arc::clone(&answered));
        writers.push(tokio::spawn(async move {
            for i in 0u32.. {
                let id = format!("w{w}-{i}");
                let req = ada.set_request("c", &id, &i.to_string(), true);
                let sent = api.http.post(format!("{}/v1/kv/set", api.url)).bearer_auth(ada.token()).json(&req).send();
                match sent.await {
                    Ok(r) if r.status().is_success() => answered.lock().unwrap().push((id, i)),
                    _ => return,
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while answered.lock().unwrap().len() < 500 {
        assert!(tokio::time::Instant::now() < deadline, "writes were not answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();

    let (mut child, url) = spawn(dir.path()).await;
    let api = Api { http: reqwest::Client::new(), url };
    for (id, i) in &answered {
        assert_eq!(ada.get(&api, "c", id).await, Some(i.to_string()), "{id} was answered before the kill");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
