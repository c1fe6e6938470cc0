//! A small test client: starts an accelerator in process on `127.0.0.1:0` with a
//! temporary data directory, and talks to it over real HTTP and websockets the way
//! the SDK does, using coffer-core's account, kv, chunk, erasure and space functions.
#![allow(dead_code)]

pub mod moto;
pub mod old_schema;
pub mod postgres;

use std::time::Duration;

use coffer_accelerator::Config;
use coffer_core::account::{self, KdfParams, RootSecret};
use coffer_core::b64;
use coffer_core::epoch;
use coffer_core::identity::UserKeys;
use coffer_core::kv::{KvKeys, KvScope};
use coffer_core::proto::storage::*;
use coffer_core::proto::*;
use coffer_core::recovery::RecoveryCode;
use coffer_core::shard::ShardAddress;
use coffer_core::space::{InviteSecret, InviteToken, SpaceKey, invite_secret_hash};
use coffer_core::{chunk, erasure};
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

/// Where a test server keeps its records and shards. (Made a few times per test:
/// its size does not matter.)
#[allow(clippy::large_enum_variant)]
pub enum Data {
    /// SQLite and a shard directory in the data directory (the embedded default).
    Embedded,
    /// PostgreSQL (a database of the server's own) and an S3 bucket of its own.
    Remote {
        /// The database, dropped with the server.
        db: postgres::Scratch,
        /// `s3://{bucket}`, or a directory every accelerator shares.
        shards: String,
        /// That directory, kept while the data is.
        shared_dir: Option<tempfile::TempDir>,
    },
}

/// The backend the tests run on: `COFFER_TEST_BACKEND=postgres` for PostgreSQL
/// (`COFFER_TEST_POSTGRES`) and S3 (the `AWS_*` variables `eval "$(scripts/s3 up)"`
/// prints; `scripts/test` runs the suites once on each); anything else, or
/// nothing, for the embedded default.
pub fn remote_backend() -> bool {
    std::env::var("COFFER_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

impl Data {
    /// Fresh data on the backend the tests run on.
    pub async fn fresh() -> Data {
        if !remote_backend() {
            return Data::Embedded;
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .expect("COFFER_TEST_BACKEND=postgres needs an S3 server: eval \"$(scripts/s3 up)\" first");
        let db = postgres::Scratch::new().await;
        // A bucket of its own, named after its database (moto takes an unsigned PUT).
        let bucket = db.name.replace('_', "-");
        let made = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.expect("S3 server");
        assert!(made.status().is_success(), "creating bucket {bucket}: {}", made.status());
        Data::Remote { db, shards: format!("s3://{bucket}"), shared_dir: None }
    }

    /// A PostgreSQL database of its own and a shard directory several accelerators
    /// share, whatever backend the tests run on: for what only several
    /// accelerators on PostgreSQL show (the change fan-out).
    pub async fn postgres() -> Data {
        let dir = tempfile::tempdir().expect("tempdir");
        let shards = dir.path().join("shards").display().to_string();
        Data::Remote { db: postgres::Scratch::new().await, shards, shared_dir: Some(dir) }
    }

    /// Points `config` at this data.
    fn configure(&self, config: &mut Config) {
        if let Data::Remote { db, shards, .. } = self {
            config.database = Some(db.url());
            config.shards = Some(shards.clone());
        }
    }
}

/// An accelerator running in this process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data directory, kept alive as long as the server (and across restarts).
    pub dir: tempfile::TempDir,
    /// Where its records and shards are.
    pub data: Data,
    /// Completes the shutdown future handed to `run`.
    stop: Option<oneshot::Sender<()>>,
    /// The server task, to wait for a clean stop.
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts on fresh data on the backend the tests run on ([`remote_backend`]);
    /// `tweak` adjusts the config.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_on(tempfile::tempdir().expect("tempdir"), Data::fresh().await, tweak).await
    }

    /// Starts on a fresh temporary data directory with the embedded backend, for
    /// tests of what it keeps on disk.
    pub async fn start_embedded(tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_in(tempfile::tempdir().expect("tempdir"), tweak).await
    }

    /// Starts the embedded backend on an existing data directory (a restart).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_on(dir, Data::Embedded, tweak).await
    }

    /// Starts on `data`, with `dir` as the data directory.
    pub async fn start_on(dir: tempfile::TempDir, data: Data, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mut config = Config::new(dir.path());
        data.configure(&mut config);
        tweak(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(coffer_accelerator::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServer { url, dir, data, stop: Some(stop), task: Some(task) }
    }

    /// Stops gracefully and starts again on the same data.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        self.halt().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let data = std::mem::replace(&mut self.data, Data::Embedded);
        Self::start_on(dir, data, tweak).await
    }

    /// Another accelerator on the same records and shards, as several run behind
    /// one address (the remote backend only: SQLite serves one process).
    pub async fn another(&self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let Data::Remote { db, shards, .. } = &self.data else {
            panic!("another accelerator needs the remote backend")
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path());
        config.database = Some(db.url());
        config.shards = Some(shards.clone());
        tweak(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(coffer_accelerator::run(listener, config, async move {
            let _ = stopped.await;
        }));
        TestServer { url, dir, data: Data::Embedded, stop: Some(stop), task: Some(task) }
    }

    /// Shuts down gracefully.
    async fn halt(&mut self) {
        self.stop.take().expect("running").send(()).ok();
        let task = self.task.take().expect("running");
        tokio::time::timeout(PATIENCE, task).await.expect("stops").expect("joins").expect("run ok");
    }

    /// Shuts down gracefully and hands back the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.halt().await;
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
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url)).header("content-type", content_type).body(body);
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

    /// DELETE.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.delete(format!("{}{path}", self.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        Self::finish(req.send().await.expect("send")).await
    }

    /// `PUT /v1/shards/{address}` with these bytes.
    pub async fn put_shard(&self, address: &str, token: Option<&str>, bytes: Vec<u8>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .put(format!("{}/v1/shards/{address}", self.url))
            .header("content-type", "application/octet-stream")
            .body(bytes);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        Self::finish(req.send().await.expect("send")).await
    }

    /// `GET /v1/shards/{address}` without a session: the bytes, or the error.
    pub async fn get_shard(&self, address: &ShardAddress) -> Result<Vec<u8>, (StatusCode, Value)> {
        let response = self.http.get(format!("{}/v1/shards/{address}", self.url)).send().await.expect("send");
        if response.status() == StatusCode::OK {
            assert_eq!(response.headers()["content-type"], "application/octet-stream");
            Ok(response.bytes().await.expect("body").to_vec())
        } else {
            Err(Self::finish(response).await)
        }
    }

    /// Whether a shard is served (open GET).
    pub async fn has_shard(&self, address: &ShardAddress) -> bool {
        match self.get_shard(address).await {
            Ok(_) => true,
            Err(answer) => {
                Api::expect_error(answer, coffer_core::ErrorCode::NotFound);
                false
            }
        }
    }

    /// `POST /v1/shards/fetch` without a session, with the answer unframed.
    pub async fn fetch_shards(&self, addresses: &[ShardAddress]) -> Vec<Option<Vec<u8>>> {
        let req = ShardsRequest { addresses: addresses.to_vec() };
        let response = self.http.post(format!("{}/v1/shards/fetch", self.url)).json(&req).send().await.expect("send");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/octet-stream");
        let body = response.bytes().await.expect("body");
        let mut rest = &body[..];
        let mut shards = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap());
            rest = &rest[4..];
            if len == SHARD_ABSENT {
                shards.push(None);
            } else {
                shards.push(Some(rest[..len as usize].to_vec()));
                rest = &rest[len as usize..];
            }
        }
        assert_eq!(shards.len(), addresses.len(), "one entry per address");
        shards
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

/// The sign-up body the SDK would send for this password, publishing the account's
/// public key (derived from `root`, SPEC.md §3.6).
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
        user_public_key: Some(b64::encode(UserKeys::derive(root).public_key())),
    }
}

/// Signs up a new account, publishing its public key as the SDK does.
pub async fn sign_up(api: &Api, username: &str, password: &str) -> Account {
    sign_up_with(api, username, password, true).await
}

/// Signs up a new account; with `publish` false, as an SDK from before public keys
/// did (the key is not sent).
pub async fn sign_up_with(api: &Api, username: &str, password: &str, publish: bool) -> Account {
    let root = RootSecret::from_bytes(random());
    let mut req = sign_up_request(username, password, &root);
    if !publish {
        req.user_public_key = None;
    }
    let session: SessionResponse = api.call("/v1/auth/signup", None, &req).await.expect("sign up");
    assert_eq!(session.username, username);
    assert_eq!(session.kv_seq, 0);
    let published = publish.then(|| b64::encode(UserKeys::derive(&root).public_key()));
    assert_eq!(session.user_public_key, published);
    Account { username: username.into(), password: password.into(), session, keys: KvKeys::derive(&root), root }
}

/// A challenge for `username`.
pub async fn challenge(api: &Api, username: &str) -> ChallengeResponse {
    api.call("/v1/auth/challenge", None, &ChallengeRequest { username: username.into() }).await.expect("challenge")
}

/// Signs `challenge` with the login key `password` gives under the recorded salt,
/// for the server's own origin.
pub async fn sign_challenge(api: &Api, username: &str, password: &str, challenge: &ChallengeResponse) -> LoginRequest {
    sign_challenge_for(api, &api.url, username, password, challenge).await
}

/// The password key `password` gives `username` under its recorded salt, derived
/// as a device derives it.
pub async fn password_key(api: &Api, username: &str, password: &str) -> account::PasswordKey {
    let salt: SaltResponse =
        api.call("/v1/auth/salt", None, &SaltRequest { username: username.into() }).await.expect("salt");
    let salt_bytes: [u8; 16] = b64::decode_array(&salt.salt).expect("16-byte salt");
    account::derive_password_key(password, &salt_bytes, &salt.kdf).expect("derive")
}

/// Signs `challenge` as a device that reached the accelerator at `origin`.
pub async fn sign_challenge_for(
    api: &Api,
    origin: &str,
    username: &str,
    password: &str,
    challenge: &ChallengeResponse,
) -> LoginRequest {
    let pwk = password_key(api, username, password).await;
    let bytes = b64::decode(&challenge.challenge).expect("challenge bytes");
    let signed = account::LoginChallenge { origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    LoginRequest {
        origin: origin.to_owned(),
        challenge_id: challenge.challenge_id.clone(),
        signature: b64::encode(pwk.login_key().sign_challenge(&signed)),
    }
}

/// The whole sign-in: salt, derive, challenge, sign, login.
pub async fn sign_in(api: &Api, username: &str, password: &str) -> Result<SessionResponse, ErrorBody> {
    let challenge: ChallengeResponse =
        api.call("/v1/auth/challenge", None, &ChallengeRequest { username: username.into() }).await?;
    let login = sign_challenge(api, username, password, &challenge).await;
    api.call("/v1/auth/login", None, &login).await
}

/// The body that publishes `user_public_key` as `username`'s (SPEC.md §3.6):
/// `challenge` (issued for `username`) signed by `signer` (the login key of the
/// account's password, or any other) as a device that reached the accelerator at
/// `origin`.
pub fn publish_key_request_for(
    origin: &str,
    username: &str,
    signer: &account::LoginKey,
    challenge: &ChallengeResponse,
    user_public_key: &[u8; 32],
) -> PublishKeyRequest {
    let bytes = b64::decode(&challenge.challenge).expect("challenge bytes");
    let signed = account::LoginChallenge { origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    PublishKeyRequest {
        origin: origin.to_owned(),
        challenge_id: challenge.challenge_id.clone(),
        signature: b64::encode(signer.sign_publication(&signed, user_public_key)),
        user_public_key: b64::encode(user_public_key),
    }
}

/// The body the SDK sends to publish `user_public_key` as the account's: a fresh
/// challenge for its username, signed with its password's login key, for the
/// server's own origin.
pub async fn publish_key_request(api: &Api, account: &Account, user_public_key: &[u8; 32]) -> PublishKeyRequest {
    let login_key = password_key(api, &account.username, &account.password).await.login_key();
    let challenge = challenge(api, &account.username).await;
    publish_key_request_for(&api.url, &account.username, &login_key, &challenge, user_public_key)
}

/// The accelerator's X25519 public key, as a challenge carries it (SPEC.md §3.9).
pub fn server_key_of(challenge: &ChallengeResponse) -> [u8; 32] {
    b64::decode_array(&challenge.server_public_key).expect("a 32-byte serverPublicKey")
}

/// A proof that the device holds `root` (SPEC.md §3.9), for `challenge` as issued
/// for `username`, made to the accelerator's key the challenge carries by a device
/// that reached it at `origin`.
pub fn root_proof(origin: &str, username: &str, root: &RootSecret, challenge: &ChallengeResponse) -> String {
    let bytes = b64::decode(&challenge.challenge).expect("challenge bytes");
    let signed = account::LoginChallenge { origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    b64::encode(UserKeys::derive(root).root_proof(&server_key_of(challenge), &signed).expect("a usable server key"))
}

/// The body the SDK sends to make a recovery code (SPEC.md §3.8) for `challenge`
/// (issued for `username`), as a device that reached the accelerator at `origin`: a
/// proof of `root`, the code's recovery key and `root` wrapped under the code.
pub fn set_recovery_request_for(
    origin: &str,
    username: &str,
    root: &RootSecret,
    code: &RecoveryCode,
    challenge: &ChallengeResponse,
) -> SetRecoveryRequest {
    let key = code.key();
    SetRecoveryRequest {
        origin: origin.to_owned(),
        challenge_id: challenge.challenge_id.clone(),
        root_proof: root_proof(origin, username, root, challenge),
        recovery_public_key: b64::encode(key.login_key().public_key()),
        wrapped_root: b64::encode(key.wrap_key().wrap(root, username, random())),
    }
}

/// The body the SDK sends to make a recovery code, for a fresh challenge for
/// `username` and the server's own origin.
pub async fn set_recovery_request(
    api: &Api,
    username: &str,
    root: &RootSecret,
    code: &RecoveryCode,
) -> SetRecoveryRequest {
    let challenge = challenge(api, username).await;
    set_recovery_request_for(&api.url, username, root, code, &challenge)
}

/// A recovery challenge for `username`.
pub async fn recover_challenge(api: &Api, username: &str) -> Result<RecoveryChallengeResponse, ErrorBody> {
    api.call("/v1/auth/recover/challenge", None, &ChallengeRequest { username: username.into() }).await
}

/// The body the SDK sends to recover: `challenge` signed by `signer` (a recovery
/// code's key, or any other) as a device that reached the accelerator at `origin`,
/// and `root` under `new_password`.
pub fn recover_request(
    origin: &str,
    username: &str,
    signer: &account::PasswordKey,
    challenge: &RecoveryChallengeResponse,
    new_password: &str,
    root: &RootSecret,
) -> RecoverRequest {
    let bytes = b64::decode(&challenge.challenge).expect("challenge bytes");
    let signed = account::LoginChallenge { origin, challenge_id: &challenge.challenge_id, username, challenge: &bytes };
    let fresh = sign_up_request(username, new_password, root);
    RecoverRequest {
        origin: origin.to_owned(),
        challenge_id: challenge.challenge_id.clone(),
        signature: b64::encode(signer.login_key().sign_challenge(&signed)),
        salt: fresh.salt,
        kdf: fresh.kdf,
        login_public_key: fresh.login_public_key,
        wrapped_root: fresh.wrapped_root,
    }
}

/// The whole recovery, as the SDK does it with only the code: a challenge, the root
/// unwrapped from it with the code, then a new password for that root. The root
/// unwrapped comes back with the session.
pub async fn recover(
    api: &Api,
    username: &str,
    code: &RecoveryCode,
    new_password: &str,
) -> Result<(SessionResponse, RootSecret), ErrorBody> {
    let challenge = recover_challenge(api, username).await?;
    let wrapped = b64::decode(&challenge.wrapped_root).expect("a wrapped root");
    let root = code.key().wrap_key().unwrap(username, &wrapped).map_err(|e| ErrorBody {
        code: coffer_core::ErrorCode::Integrity,
        message: format!("the code does not open the wrapped root: {e}"),
    })?;
    let req = recover_request(&api.url, username, &code.key(), &challenge, new_password, &root);
    let session = api.call("/v1/auth/recover", None, &req).await?;
    Ok((session, root))
}

impl Account {
    pub fn token(&self) -> &str {
        &self.session.token
    }

    pub fn user_id(&self) -> &str {
        &self.session.user_id
    }

    /// The account's X25519 key pair (SPEC.md §3.6), from its root secret.
    pub fn user_keys(&self) -> UserKeys {
        UserKeys::derive(&self.root)
    }

    /// Publishes the account's public key as the SDK does (`POST /v1/auth/public-key`,
    /// signed with the password's login key): `Ok` for 204, or the error.
    pub async fn publish_key(&self, api: &Api) -> Result<(), ErrorBody> {
        let req = publish_key_request(api, self, &self.user_keys().public_key()).await;
        self.post_empty(api, "/v1/auth/public-key", &req).await
    }

    /// The account's roster entry in a space under `key` (SPEC.md F.12), as the SDK
    /// makes it.
    pub fn roster_mac(&self, space_id: &str, key: &SpaceKey) -> String {
        b64::encode(epoch::roster_mac(key, space_id, self.user_id(), &self.user_keys().public_key()))
    }

    fn scope<'a>(&'a self, collection: &'a str, id: &'a str) -> KvScope<'a> {
        KvScope { user_id: &self.session.user_id, collection, id }
    }

    /// The request [`Account::set`] sends.
    pub fn set_request(&self, collection: &str, id: &str, json: &str, encrypt: bool) -> KvSetRequest {
        let value = self.keys.encode(&self.scope(collection, id), json, encrypt, random());
        KvSetRequest { collection: collection.into(), id: id.into(), value }
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
        let answer: KvGetResponse = api.call("/v1/kv/get", Some(self.token()), &req).await.expect("kv get");
        answer.value.map(|value| self.keys.decode(&self.scope(collection, id), &value).expect("opens"))
    }

    /// Deletes a value.
    pub async fn delete(&self, api: &Api, collection: &str, id: &str) -> KvDeleteResponse {
        let req = KvKeyRequest { collection: collection.into(), id: id.into() };
        api.call("/v1/kv/delete", Some(self.token()), &req).await.expect("kv delete")
    }

    /// Lists a collection's ids.
    pub async fn list(&self, api: &Api, collection: &str) -> Vec<String> {
        let req = KvListRequest { collection: collection.into(), page: PageQuery::default() };
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
        // One deadline for the frame, however many pings come before it.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let msg =
                tokio::time::timeout_at(deadline, self.ws.next()).await.expect("a frame within the test's patience");
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

/// Polls `check` until it holds; panics after [`PATIENCE`]. For effects of the
/// background collector, which runs on its own schedule.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A 16-byte id in base64url, as the SDK draws for spaces and files.
pub fn new_id() -> String {
    b64::encode(random::<16>())
}

/// One chunk of `plaintext` sealed under a fresh key and erasure-coded 4 + 2, as
/// the SDK writes it: six shards (four data, two parity) with their addresses.
pub fn shards_of(plaintext: &[u8]) -> Vec<(ShardAddress, Vec<u8>)> {
    let key = chunk::ChunkKey::from_bytes(random());
    let sealed = chunk::seal_chunk(&key, 0, plaintext);
    let shards = erasure::encode(&sealed, 4, 2).expect("erasure encode");
    shards.into_iter().map(|s| (ShardAddress::of(&s), s)).collect()
}

/// The addresses of some shards.
pub fn addresses(shards: &[(ShardAddress, Vec<u8>)]) -> Vec<ShardAddress> {
    shards.iter().map(|(a, _)| *a).collect()
}

/// Total bytes of some shards.
pub fn total_len(shards: &[(ShardAddress, Vec<u8>)]) -> u64 {
    shards.iter().map(|(_, s)| s.len() as u64).sum()
}

/// A sealed name or record stand-in: random bytes, as opaque to the accelerator as
/// the real thing.
pub fn sealed(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("randomness");
    b64::encode(bytes)
}

/// A space made by its owner, with the key the owner keeps to itself.
pub struct TestSpace {
    /// Its id.
    pub id: String,
    /// The key of its epoch `epoch` (never sent).
    pub key: SpaceKey,
    /// The key epoch the test writes at (0 until it rotates).
    pub epoch: u32,
}

impl TestSpace {
    /// `/v1/spaces/{id}{rest}`.
    pub fn path(&self, rest: &str) -> String {
        format!("/v1/spaces/{}{rest}", self.id)
    }
}

impl Account {
    /// Uploads shards and checks each answer 204.
    pub async fn upload(&self, api: &Api, shards: &[(ShardAddress, Vec<u8>)]) {
        for (address, bytes) in shards {
            let (status, body) = api.put_shard(&address.to_hex(), Some(self.token()), bytes.clone()).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "upload: {body}");
        }
    }

    /// `POST /v1/shards/missing`.
    pub async fn missing(&self, api: &Api, addresses: &[ShardAddress]) -> Vec<ShardAddress> {
        let req = ShardsRequest { addresses: addresses.to_vec() };
        let answer: ShardsMissingResponse =
            api.call("/v1/shards/missing", Some(self.token()), &req).await.expect("missing");
        answer.missing
    }

    /// Creates a space with a random id and key, entering the roster under it.
    pub async fn create_space(&self, api: &Api) -> TestSpace {
        let id = new_id();
        let key = SpaceKey::from_bytes(random());
        let req = CreateSpaceRequest {
            space_id: id.clone(),
            sealed_name: sealed(40),
            roster_mac: self.roster_mac(&id, &key),
        };
        let info: SpaceInfo = api.call("/v1/spaces", Some(self.token()), &req).await.expect("create space");
        assert_eq!((info.space_id.as_str(), info.role), (id.as_str(), Role::Owner));
        assert_eq!((info.epoch, info.rotation_due, info.in_roster), (0, false, true));
        TestSpace { id, key, epoch: 0 }
    }

    /// Registers an invite and returns its token (which never reaches the server whole).
    pub async fn invite(
        &self,
        api: &Api,
        space: &TestSpace,
        role: Role,
        expires_in_ms: Option<u64>,
        max_uses: Option<u32>,
    ) -> Result<InviteToken, ErrorBody> {
        let secret = InviteSecret::from_bytes(random());
        let req = CreateInviteRequest {
            secret_hash: b64::encode(invite_secret_hash(&space.id, &secret)),
            role,
            expires_in_ms,
            max_uses,
            epoch: space.epoch,
        };
        let info: InviteInfo = api.call(&space.path("/invites"), Some(self.token()), &req).await?;
        assert_eq!(info.role, role);
        Ok(InviteToken { space_id: space.id.clone(), space_key: space.key.clone(), secret })
    }

    /// Joins with an invite token's text, as `client.space.join(token)` does, entering
    /// the roster under the token's key.
    pub async fn join(&self, api: &Api, token: &str) -> Result<SpaceInfo, ErrorBody> {
        let token = InviteToken::parse(token).expect("a valid token");
        let req = JoinSpaceRequest {
            roster_mac: self.roster_mac(&token.space_id, &token.space_key),
            space_id: token.space_id,
            secret: b64::encode(token.secret.as_bytes()),
        };
        api.call("/v1/spaces/join", Some(self.token()), &req).await
    }

    /// Commits a file listing these shards, with a fresh id, at the space's epoch.
    pub async fn commit(&self, api: &Api, space: &TestSpace, shards: &[ShardAddress]) -> Result<FileEntry, ErrorBody> {
        let req = CommitFileRequest { epoch: space.epoch, ..commit_request(shards) };
        api.call(&space.path("/files"), Some(self.token()), &req).await
    }

    /// `GET` a space route, typed.
    pub async fn get_json<R: DeserializeOwned>(&self, api: &Api, path: &str) -> Result<R, ErrorBody> {
        let (status, json) = api.get(path, Some(self.token())).await;
        if status.is_success() {
            Ok(serde_json::from_value(json).expect("answer shape"))
        } else {
            let err: ErrorBody = serde_json::from_value(json).expect("error shape");
            assert_eq!(status.as_u16(), err.code.http_status(), "status matches code");
            Err(err)
        }
    }

    /// The space's files.
    pub async fn files(&self, api: &Api, space: &TestSpace) -> Result<Vec<FileEntry>, ErrorBody> {
        self.get_json::<FileListResponse>(api, &space.path("/files")).await.map(|l| l.files)
    }

    /// The space's used bytes.
    pub async fn used(&self, api: &Api, space: &TestSpace) -> Result<u64, ErrorBody> {
        self.get_json::<UsageResponse>(api, &space.path("/usage")).await.map(|u| u.used_bytes)
    }

    /// Deletes a file.
    pub async fn delete_file(&self, api: &Api, space: &TestSpace, file_id: &str) -> Result<bool, ErrorBody> {
        let (status, json) = api.delete(&space.path(&format!("/files/{file_id}")), Some(self.token())).await;
        if status.is_success() {
            Ok(serde_json::from_value::<DeleteFileResponse>(json).expect("answer shape").existed)
        } else {
            Err(serde_json::from_value(json).expect("error shape"))
        }
    }

    /// A route answering 204 (leave, remove): `Ok` or the error.
    pub async fn post_empty(&self, api: &Api, path: &str, body: &impl Serialize) -> Result<(), ErrorBody> {
        let (status, json) = api.post(path, Some(self.token()), body).await;
        if status == StatusCode::NO_CONTENT {
            Ok(())
        } else {
            let err: ErrorBody = serde_json::from_value(json).expect("error shape");
            assert_eq!(status.as_u16(), err.code.http_status(), "status matches code");
            Err(err)
        }
    }
}

/// A commit of `shards` as a file of up to four 4 MiB chunks, 4 + 2 (the declared
/// size bounds what a commit may list).
pub fn commit_request(shards: &[ShardAddress]) -> CommitFileRequest {
    CommitFileRequest {
        file_id: new_id(),
        sealed_record: sealed(120),
        shards: shards.to_vec(),
        size: 16 * 1024 * 1024,
        chunk_size: 4 * 1024 * 1024,
        data_shards: 4,
        parity_shards: 2,
        epoch: 0,
    }
}
