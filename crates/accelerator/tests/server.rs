//! The process around the routes: health, static files, CORS.

mod common;

use common::*;

#[tokio::test]
async fn health_answers() {
    let server = TestServer::start(|_| {}).await;
    let (status, body) = server.api().get("/v1/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn serves_the_demo_and_the_package() {
    let www = tempfile::tempdir().unwrap();
    let pkg = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "<h1>demo</h1>").unwrap();
    std::fs::write(www.path().join("app.js"), "export {}").unwrap();
    std::fs::write(pkg.path().join("coffer.js"), "export default 1").unwrap();
    std::fs::write(pkg.path().join("coffer_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let (www_path, pkg_path) = (www.path().to_owned(), pkg.path().to_owned());
    let server = TestServer::start(move |c| {
        c.www_dir = Some(www_path);
        c.pkg_dir = Some(pkg_path);
    })
    .await;
    let http = reqwest::Client::new();
    let fetch = |path: &str| http.get(format!("{}{path}", server.url)).send();

    let index = fetch("/").await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.text().await.unwrap(), "<h1>demo</h1>");
    let js = fetch("/pkg/coffer.js").await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let wasm = fetch("/pkg/coffer_bg.wasm").await.unwrap();
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert_eq!(&wasm.bytes().await.unwrap()[..4], b"\0asm");
    assert_eq!(fetch("/app.js").await.unwrap().status(), 200);
    assert_eq!(fetch("/missing.js").await.unwrap().status(), 404);
    assert_eq!(fetch("/../Cargo.toml").await.unwrap().status(), 404);
    // The API still answers JSON under /v1.
    Api::expect_error(server.api().get("/v1/nope", None).await, coffer_core::ErrorCode::NotFound);
    assert!(server.api().healthy().await);
}

#[tokio::test]
async fn any_origin_may_call_the_api_with_a_bearer_header() {
    let server = TestServer::start(|_| {}).await;
    let http = reqwest::Client::new();
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{}/v1/kv/set", server.url))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");

    let answer =
        http.get(format!("{}/v1/health", server.url)).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
}
