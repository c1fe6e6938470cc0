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

/// SPEC.md's route table, as (method, path) with every `{…}` filled in and the
/// query dropped.
fn spec_routes() -> Vec<(String, String)> {
    let spec = include_str!("../../core/SPEC.md");
    let table = spec.split("### 7.1 Routes").nth(1).unwrap().split("###").next().unwrap();
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split('`').next())
        .map(|route| {
            let (method, path) = route.split_once(' ').unwrap();
            let path = path.split('?').next().unwrap();
            let filled: Vec<String> = path
                .split('/')
                .map(|part| match part {
                    "{address}" => "a".repeat(64),
                    p if p.starts_with('{') => "AAAAAAAAAAAAAAAAAAAAAA".into(),
                    p => p.into(),
                })
                .collect();
            (method.to_owned(), filled.join("/"))
        })
        .collect()
}

#[tokio::test]
async fn every_route_in_the_spec_is_served() {
    let server = TestServer::start(|_| {}).await;
    let http = reqwest::Client::new();
    let routes = spec_routes();
    assert!(routes.len() >= 28, "the table lists every route ({} found)", routes.len());
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let answer = http.request(method.clone(), format!("{}{path}", server.url)).send().await.unwrap();
        let status = answer.status();
        let body = answer.text().await.unwrap();
        assert!(!body.contains("no route"), "{method} {path} is in SPEC.md but not served: {status} {body}");
    }
}
