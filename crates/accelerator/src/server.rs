//! The HTTP side: shared state, the router with its limits and CORS, static files,
//! and the serve loop with graceful shutdown and the shard collector beside it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use coffer_core::ErrorCode;
use coffer_core::proto::storage::MAX_SHARD_BYTES;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::ServerSecret;
use crate::budget::{Rule, Senders};
use crate::config::Config;
use crate::error::ApiError;
use crate::feed::FeedHub;
use crate::gc::ShardKeeper;
use crate::listener::{self, Gate};
use crate::store::shard_dir::ShardDir;
use crate::store::sqlite::SqliteRecords;
use crate::store::{Records, StoreError, Withdrawn};
use crate::throttle::Throttle;
use crate::{auth, bench, budget, feed, files, gc, kv, shards, spaces};

/// What every handler shares. Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    /// The records backend, behind the [`Records`] trait so it can be swapped.
    records: Arc<dyn Records>,
    /// The shard store with the same records, kept in step ([`crate::gc`]).
    keeper: Arc<ShardKeeper>,
    /// Limits and lifetimes the handlers apply.
    pub config: Arc<Config>,
    /// Key for the stable made-up salts of unknown usernames.
    pub secret: Arc<ServerSecret>,
    /// Wakes feed websockets when their user's change log grows.
    pub feed: Arc<FeedHub>,
    /// Becomes `true` when the server shuts down, so feed websockets close.
    pub shutdown: watch::Receiver<bool>,
    /// Held by every feed task; `run` waits until all are dropped.
    pub feed_alive: mpsc::Sender<()>,
    /// Sign-in rate limits.
    pub throttle: Arc<Throttle>,
    /// Room for feed websockets that have not authenticated yet.
    pub unauthenticated_sockets: Arc<Semaphore>,
    /// Bytes large request bodies may hold in memory, in KiB permits ([`crate::budget`]).
    pub body_budget: Arc<Semaphore>,
    /// Large request bodies in flight per user.
    pub bodies_per_user: Arc<crate::budget::PerUser>,
    /// Pieces of shards being read from the store at this moment.
    pub shard_reads: Arc<Semaphore>,
}

impl AppState {
    /// Runs a [`Records`] call on the blocking pool and maps its error.
    pub async fn records<T, F>(&self, call: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Records) -> Result<T, StoreError> + Send + 'static,
    {
        let records = Arc::clone(&self.records);
        match tokio::task::spawn_blocking(move || call(&*records)).await {
            Ok(result) => result.map_err(ApiError::from),
            Err(join) => Err(ApiError::internal(format!("records task failed: {join}"))),
        }
    }

    /// Runs a call on the shard store and its records on the blocking pool.
    pub async fn keeper<T, F>(&self, call: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&ShardKeeper) -> Result<T, ApiError> + Send + 'static,
    {
        let keeper = self.shard_keeper();
        match tokio::task::spawn_blocking(move || call(&keeper)).await {
            Ok(result) => result,
            Err(join) => Err(ApiError::internal(format!("shard task failed: {join}"))),
        }
    }

    /// Takes a withdrawn file or space apart, a step at a time, freeing the shards no
    /// file uses any more ([`ShardKeeper::unwind`]).
    pub async fn unwind(&self, what: Withdrawn) -> Result<usize, ApiError> {
        self.keeper(move |keeper| keeper.unwind(&what)).await
    }

    /// The shard keeper itself, for work that outlives one call (a streamed answer).
    pub fn shard_keeper(&self) -> Arc<ShardKeeper> {
        Arc::clone(&self.keeper)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `now_ms() + ttl`, saturating.
pub fn expiry_ms(ttl: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
}

/// The demo pages' Content-Security-Policy: scripts, styles and connections only
/// from the page's own origin (wasm compiled from there too), images and media also
/// from `blob:` URLs (previews of opened files), no plugins, no framing.
const DEMO_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
    img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Answers a request that takes longer than the request timeout (its body included)
/// with `Network`, and drops it.
async fn request_timeout(
    State(limit): State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Network,
            format!("the request took longer than {} s to arrive and be answered; retry it", limit.as_secs()),
        )
        .into_response(),
    }
}

/// Every route: the API under `/v1`, the package under `/pkg/`, the demo at `/`.
pub fn router(state: AppState) -> Router {
    let config = Arc::clone(&state.config);
    // Every body waits for room before it is read (crate::budget).
    let budgeted = |max: usize, senders: Senders| {
        middleware::from_fn_with_state((state.clone(), Rule { max, senders }), budget::budgeted)
    };
    let mut api = Router::new().route("/health", get(health));
    if config.bench_endpoints {
        api = api
            .route("/bench/echo", get(bench::echo))
            .route("/bench/sink", post(bench::sink))
            .route("/bench/source", get(bench::source));
    }
    // Strangers may send these, so their bodies are small.
    let sign_in = Router::new()
        .route("/auth/salt", post(auth::salt))
        .route("/auth/signup", post(auth::signup))
        .route("/auth/challenge", post(auth::challenge))
        .route("/auth/login", post(auth::login))
        .route_layer(budgeted(auth::MAX_SIGN_IN_BODY_BYTES, Senders::Anyone))
        .route_layer(DefaultBodyLimit::max(auth::MAX_SIGN_IN_BODY_BYTES));
    // Shards are read by address, the capability: anyone may ask for a batch.
    let fetch = Router::new()
        .route("/shards/fetch", post(shards::fetch))
        .route_layer(budgeted(shards::MAX_FETCH_BODY_BYTES, Senders::Anyone))
        .route_layer(DefaultBodyLimit::max(shards::MAX_FETCH_BODY_BYTES));
    let signed_in = Router::new()
        .route("/auth/session", get(auth::session))
        .route("/auth/password", post(auth::change_password))
        .route("/auth/signout", post(auth::signout))
        .route("/kv/set", post(kv::set))
        .route("/kv/get", post(kv::get))
        .route("/kv/delete", post(kv::delete))
        .route("/kv/list", post(kv::list))
        .route("/kv/feed", get(feed::upgrade))
        .route("/shards/missing", post(shards::missing))
        .route("/spaces", post(spaces::create).get(spaces::list))
        .route("/spaces/join", post(spaces::join))
        .route("/spaces/{space}/invites", post(spaces::invite))
        .route("/spaces/{space}/members", get(spaces::members))
        .route("/spaces/{space}/members/remove", post(spaces::remove_member))
        .route("/spaces/{space}/leave", post(spaces::leave))
        .route("/spaces/{space}/usage", get(spaces::usage))
        .route("/spaces/{space}/files/{file}", get(files::get).delete(files::delete))
        .route_layer(budgeted(config.max_body_bytes, Senders::Users));
    // Only these take bodies larger than JSON's limit, each user a few at a time;
    // the layers on the one method override the limit below.
    let uploads = Router::new()
        .route(
            "/shards/{address}",
            put(shards::put)
                .layer(DefaultBodyLimit::max(MAX_SHARD_BYTES))
                .layer(budgeted(MAX_SHARD_BYTES, Senders::Uploaders))
                .get(shards::get),
        )
        .route(
            "/spaces/{space}/files",
            post(files::commit)
                .layer(DefaultBodyLimit::max(files::MAX_COMMIT_BODY_BYTES))
                .layer(budgeted(files::MAX_COMMIT_BODY_BYTES, Senders::Uploaders))
                .get(files::list),
        );
    let api = api
        .merge(sign_in)
        .merge(fetch)
        .merge(signed_in)
        .merge(uploads)
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(config.limits.request_timeout, request_timeout))
        .with_state(state);

    let mut app = Router::new().nest("/v1", api);
    if let Some(pkg) = &config.pkg_dir {
        // `ServeDir` types `.wasm` as `application/wasm`, which streaming
        // compilation in the browser requires.
        app = app.nest_service("/pkg", ServeDir::new(pkg));
    }
    app = match &config.www_dir {
        Some(www) => app.fallback_service(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(DEMO_CSP),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .service(ServeDir::new(www).append_index_html_on_directories(true)),
        ),
        None => app.fallback(no_route),
    };

    // Sessions travel in a header, not a cookie, so any origin may call the API:
    // a page without the token can do nothing with it.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        // So a page on another origin can read how long a `RateLimited` asks it to wait.
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600));

    // A bug in a handler answers `Internal` as JSON, like every other failure,
    // and the accelerator keeps serving.
    let panics = CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response());

    app.layer(panics).layer(cors).layer(TraceLayer::new_for_http())
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {method} {}; see the route table in coffer_core::proto", uri.path()))
}

/// Opens the records and the shard store, starts the collector, then serves
/// `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::store::private_dir(&config.data_dir)?;
    let secret = ServerSecret::load_or_create(&config.data_dir)?;
    let records: Arc<dyn Records> = Arc::new(
        SqliteRecords::open(&config.data_dir, config.change_log_retain)
            .map_err(std::io::Error::other)?
            .with_step(config.shards_per_step),
    );
    let keeper = Arc::new(ShardKeeper::new(Arc::clone(&records), Arc::new(ShardDir::open(&config.data_dir)?)));

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (feed_alive, mut feeds_done) = mpsc::channel::<()>(1);
    let collector =
        tokio::spawn(gc::run(Arc::clone(&keeper), config.shard_grace, config.gc_interval, shutdown_rx.clone()));
    let mut config = config;
    if config.public_origins.is_empty() {
        config.public_origins = crate::config::default_origins(listener.local_addr()?);
    }
    let limits = config.limits.clone();
    let state = AppState {
        records,
        keeper,
        throttle: Arc::new(Throttle::new(&limits)),
        unauthenticated_sockets: Arc::new(Semaphore::new(limits.max_unauthenticated_sockets)),
        body_budget: Arc::new(Semaphore::new(crate::budget::permits(limits.body_buffer_bytes))),
        bodies_per_user: Arc::new(crate::budget::PerUser::new(limits.max_uploads_per_user)),
        shard_reads: Arc::new(Semaphore::new(limits.max_concurrent_shard_reads.max(1))),
        config: Arc::new(config),
        secret: Arc::new(secret),
        feed: Arc::new(FeedHub::default()),
        shutdown: shutdown_rx,
        feed_alive,
    };
    let app = router(state);

    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    };
    listener::serve(listener, app, &limits, Arc::new(Gate::default()), signal).await?;

    // Every clone of the state is gone once the last feed task ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), feeds_done.recv()).await;
    // The collector stops at its next tick; a pass under way finishes first.
    let _ = tokio::time::timeout(Duration::from_secs(5), collector).await;
    tracing::info!("stopped");
    Ok(())
}
