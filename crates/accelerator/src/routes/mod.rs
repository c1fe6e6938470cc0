//! The routes under `/v1`, each module a group of them, and the router that mounts
//! them with their body rules, the request timeout, CORS, the package and the demo.

pub mod auth;
pub mod bench;
pub mod feed;
pub mod files;
pub mod kv;
pub mod shards;
pub mod space_keys;
pub mod spaces;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use coffer_core::ErrorCode;
use coffer_core::proto::storage::MAX_SHARD_BYTES;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::budget::{self, Rule, Senders};
use crate::error::ApiError;
use crate::state::AppState;

/// The demo pages' Content-Security-Policy: scripts, styles and connections only
/// from the page's own origin (wasm compiled from there too), images and media also
/// from `blob:` URLs (previews of opened files), no plugins, no framing.
const DEMO_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
    img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// With `--bench-endpoints`, the pages may also connect to any loopback port.
const BENCH_PAGES_CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    connect-src 'self' http://127.0.0.1:*; object-src 'none'; base-uri 'none'";

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
        .route("/auth/recover/challenge", post(auth::recover_challenge))
        .route("/auth/recover", post(auth::recover))
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
        .route("/auth/public-key", post(auth::publish_key))
        .route("/auth/recovery", post(auth::set_recovery))
        .route("/kv/set", post(kv::set))
        .route("/kv/get", post(kv::get))
        .route("/kv/delete", post(kv::delete))
        .route("/kv/list", post(kv::list))
        .route("/kv/legacy", get(kv::legacy))
        .route("/kv/feed", get(feed::upgrade))
        .route("/shards/missing", post(shards::missing))
        .route("/spaces", post(spaces::create).get(spaces::list))
        .route("/spaces/join", post(spaces::join))
        .route("/spaces/{space}/invites", post(spaces::invite))
        .route("/spaces/{space}/members", get(spaces::members))
        .route("/spaces/{space}/members/remove", post(spaces::remove_member))
        .route("/spaces/{space}/leave", post(spaces::leave))
        .route("/spaces/{space}/roster", post(space_keys::enter_roster))
        .route("/spaces/{space}/keys", get(space_keys::keys))
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
        )
        // A rename lists up to MAX_RENAMES keys, each under two pairs of names.
        .route(
            "/kv/rename",
            post(kv::rename)
                .layer(DefaultBodyLimit::max(kv::MAX_RENAME_BODY_BYTES))
                .layer(budgeted(kv::MAX_RENAME_BODY_BYTES, Senders::Uploaders)),
        )
        // A rotation lists every member with a roster entry.
        .route(
            "/spaces/{space}/rotate",
            post(space_keys::rotate)
                .layer(DefaultBodyLimit::max(space_keys::MAX_ROTATE_BODY_BYTES))
                .layer(budgeted(space_keys::MAX_ROTATE_BODY_BYTES, Senders::Uploaders)),
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
    // The benchmark's pages report to a loopback server of its own (scripts/bench).
    let csp = if config.bench_endpoints { BENCH_PAGES_CSP } else { DEMO_CSP };
    app = match &config.www_dir {
        Some(www) => app.fallback_service(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(csp),
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
