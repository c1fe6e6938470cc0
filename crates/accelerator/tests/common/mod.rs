//! A small test client: starts an accelerator in process on `127.0.0.1:0` with a
//! temporary data directory, and talks to it over real HTTP and websockets the way
//! the SDK does, using coffer-core's account and kv functions.
#![allow(dead_code)]

use std::time::Duration;

use coffer_accelerator::Config;
use coffer_core::account::{self, KdfParams, RootSecret};
use coffer_core::b64;
use coffer_core::kv::{KvKeys, KvScope};
use coffer_core::proto::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Long enough never to fire on a healthy run; only stops a broken test from hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// An accelerator running in this process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory, kept alive as long as the server (and across restarts).
    pub dir: tempfile::TempDir,
    /// Completes the shutdown future handed to `run`.
    stop: Option<oneshot::Sender<()>>,
    /// The server task, to wait for a clean stop.
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts on a fresh temporary data directory; `tweak` adjusts the config.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("tempdir"), tweak).await
    }

    /// Starts on an existing data directory (a restart).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = Config::new(dir.path());
        tweak(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(coffer_accelerator::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServer { url, dir, stop: Some(stop), task: Some(task) }
    }

    /// Shuts down gracefully and hands back the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.stop.take().expect("running").send(()).ok();
        let task = self.task.take().expect("running");
        tokio::time::timeout(PATIENCE, task).await.expect("stops").expect("joins").expect("run ok");
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// An HTTP client for this server.
    pub fn api(&self) -> Api {
        Api { http: reqwest::Client::new(), url: self.url.clone() }
    }

    /// `ws://…/v1/kv/feed`.
    pub fn feed_url(&self) -> String {
        format!("{}/v1/kv/feed", self.url.replacen("http://", "ws://", 1))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Raw HTTP calls that return the status and the JSON body (or `Null`).
#[derive(Clone)]
pub struct Api {
    /// One client, so connections are reused as a browser would.
    pub http: reqwest::Client,
    /// The server's base URL.
    pub url: String,
}

impl Api {
    async fn finish(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"));
        let bytes = response.bytes().await.expect("body");
        if status != StatusCode::NO_CONTENT && !status.is_success() {
            assert!(is_json, "error answers must be JSON, got {status} {:?}", String::from_utf8_lossy(&bytes));
        }
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        (status, body)
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &impl Serialize) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        Self::finish(req.send().await.expect("send")).await
    }

    /// POST with raw bytes and a content type.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req =
            self.http.post(format!("{}{path}", self.url)).header("content-type", content_type).body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        Self::finish(req.send().await.expect("send")).await
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        Self::finish(req.send().await.expect("send")).await
    }

    /// A typed call: the answer, or the error body.
    pub async fn call<R: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> Result<R, ErrorBody> {
        let (status, json) = self.post(path, token, body).await;
        if status.is_success() {
            Ok(serde_json::from_value(json).expect("answer shape"))
        } else {
            let err: ErrorBody = serde_json::from_value(json).expect("error shape");
            assert_eq!(status.as_u16(), err.code.http_status(), "status matches code");
            Err(err)
        }
    }

    /// Asserts an error answer: status, JSON body with this code, and a message.
    pub fn expect_error(answer: (StatusCode, Value), code: coffer_core::ErrorCode) -> String {
        let (status, body) = answer;
        assert_eq!(status.as_u16(), code.http_status(), "status for {code}: {body}");
        let err: ErrorBody = serde_json::from_value(body).expect("ErrorBody");
        assert_eq!(err.code, code);
        assert!(!err.message.is_empty());
        err.message
    }

    /// `GET /v1/health` answers.
    pub async fn healthy(&self) -> bool {
        self.get("/v1/health", None).await.0 == StatusCode::OK
    }
}

/// Cheap Argon2id parameters for tests.
pub fn fast_kdf() -> KdfParams {
    KdfParams { mem_kib: KdfParams::MIN_MEM_KIB, iterations: 1, ..KdfParams::default() }
}

pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes
}

/// What a device holds after signing in.
pub struct Account {
    /// The name signed up with.
    pub username: String,
    /// The password, to sign in again from "another device".
    pub password: String,
    /// The session sign-up returned.
    pub session: SessionResponse,
    /// The root secret, to check that other devices unwrap the same one.
    pub root: RootSecret,
    /// The kv keys, to seal and open values as the SDK does.
    pub keys: KvKeys,
}

/// The sign-up body the SDK would send for this password.
pub fn sign_up_request(username: &str, password: &str, root: &RootSecret) -> SignUpRequest {
    let salt: [u8; 16] = random();
    let kdf = fast_kdf();
    let pwk = account::derive_password_key(password, &salt, &kdf).expect("derive");
    SignUpRequest {
        username: username.into(),
        salt: b64::encode(salt),
        kdf,
        login_public_key: b64::encode(pwk.login_key().public_key()),
        wrapped_root: b64::encode(pwk.wrap_key().wrap(root, username, random())),
    }
}

/// Signs up a new account.
pub async fn sign_up(api: &Api, username: &str, password: &str) -> Account {
    let root = RootSecret::from_bytes(random());
    let session: SessionResponse =
        api.call("/v1/auth/signup", None, &sign_up_request(username, password, &root)).await.expect("sign up");
    assert_eq!(session.username, username);
    assert_eq!(session.kv_seq, 0);
    Account {
        username: username.into(),
        password: password.into(),
        session,
        keys: KvKeys::derive(&root),
        root,
    }
}

/// A challenge for `username`.
pub async fn challenge(api: &Api, username: &str) -> ChallengeResponse {
    api.call("/v1/auth/challenge", None, &ChallengeRequest { username: username.into() }).await.expect("challenge")
}

/// Signs `challenge` with the login key `password` gives under the recorded salt.
pub async fn sign_challenge(api: &Api, username: &str, password: &str, challenge: &ChallengeResponse) -> LoginRequest {
    let salt: SaltResponse =
        api.call("/v1/auth/salt", None, &SaltRequest { username: username.into() }).await.expect("salt");
    let salt_bytes: [u8; 16] = b64::decode_array(&salt.salt).expect("16-byte salt");
    let pwk = account::derive_password_key(password, &salt_bytes, &salt.kdf).expect("derive");
    let bytes = b64::decode(&challenge.challenge).expect("challenge bytes");
    LoginRequest {
        challenge_id: challenge.challenge_id.clone(),
        signature: b64::encode(pwk.login_key().sign_challenge(username, &bytes)),
    }
}

/// The whole sign-in: salt, derive, challenge, sign, login.
pub async fn sign_in(api: &Api, username: &str, password: &str) -> Result<SessionResponse, ErrorBody> {
    let challenge = challenge(api, username).await;
    let login = sign_challenge(api, username, password, &challenge).await;
    api.call("/v1/auth/login", None, &login).await
}

impl Account {
    pub fn token(&self) -> &str {
        &self.session.token
    }

    pub fn user_id(&self) -> &str {
        &self.session.user_id
    }

    fn scope<'a>(&'a self, collection: &'a str, id: &'a str) -> KvScope<'a> {
        KvScope { user_id: &self.session.user_id, collection, id }
    }

    /// Sets a value the way the SDK does (sealed unless `encrypt` is false).
    pub async fn set(&self, api: &Api, collection: &str, id: &str, json: &str, encrypt: bool) -> u64 {
        let value = self.keys.encode(&self.scope(collection, id), json, encrypt, random());
        let req = KvSetRequest { collection: collection.into(), id: id.into(), value };
        let answer: KvWriteResponse = api.call("/v1/kv/set", Some(self.token()), &req).await.expect("kv set");
        answer.seq
    }

    /// Gets and opens a value; `None` when absent.
    pub async fn get(&self, api: &Api, collection: &str, id: &str) -> Option<String> {
        let req = KvKeyRequest { collection: collection.into(), id: id.into() };
        match api.call::<KvGetResponse>("/v1/kv/get", Some(self.token()), &req).await {
            Ok(answer) => Some(self.keys.decode(&self.scope(collection, id), &answer.value).expect("opens")),
            Err(err) if err.code == coffer_core::ErrorCode::NotFound => None,
            Err(err) => panic!("kv get: {err:?}"),
        }
    }

    /// Deletes a value.
    pub async fn delete(&self, api: &Api, collection: &str, id: &str) -> KvDeleteResponse {
        let req = KvKeyRequest { collection: collection.into(), id: id.into() };
        api.call("/v1/kv/delete", Some(self.token()), &req).await.expect("kv delete")
    }

    /// Lists a collection's ids.
    pub async fn list(&self, api: &Api, collection: &str) -> Vec<String> {
        let req = KvListRequest { collection: collection.into() };
        let answer: KvListResponse = api.call("/v1/kv/list", Some(self.token()), &req).await.expect("kv list");
        answer.ids
    }
}

/// A feed websocket.
pub struct Feed {
    /// The raw socket, for tests that send odd frames or watch pings.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Feed {
    /// Connects without authenticating.
    pub async fn connect(server: &TestServer) -> Feed {
        let (ws, _) = tokio_tungstenite::connect_async(server.feed_url()).await.expect("websocket connects");
        Feed { ws }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// Sends the auth frame.
    pub async fn auth(&mut self, token: &str, since: Option<u64>) {
        let frame = ClientFrame::Auth { token: token.into(), since };
        self.send_text(&serde_json::to_string(&frame).unwrap()).await;
    }

    /// Connects, authenticates and returns the feed with the head from `Ready`.
    pub async fn open(server: &TestServer, token: &str, since: Option<u64>) -> (Feed, u64) {
        let mut feed = Feed::connect(server).await;
        feed.auth(token, since).await;
        match feed.next().await {
            Some(ServerFrame::Ready { seq }) => (feed, seq),
            other => panic!("expected ready, got {other:?}"),
        }
    }

    /// The next server frame; `None` once the socket closes.
    pub async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("a frame within the test's patience");
            match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("server frame shape"));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next frame, which must be a change.
    pub async fn change(&mut self) -> ChangeEvent {
        match self.next().await {
            Some(ServerFrame::Change(event)) => event,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// Expects an `Error` frame with this code, then the close.
    pub async fn expect_error_and_close(&mut self, code: coffer_core::ErrorCode) {
        match self.next().await {
            Some(ServerFrame::Error(err)) => assert_eq!(err.code, code, "{}", err.message),
            other => panic!("expected an error frame, got {other:?}"),
        }
        assert_eq!(self.next().await, None, "closes after the error");
    }
}
