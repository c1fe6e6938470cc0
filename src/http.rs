//! JSON over `fetch` to the accelerator: one place that builds requests, attaches the
//! session token as a header (never in a URL) and turns every answer that is not a
//! success into an [`SdkError`] with the accelerator's code and message. Written on
//! `web_sys` directly, not gloo-net's `http` (README, *Dependencies*: its `send` traps
//! when `fetch` rejects with an abort reason that is not an `Error`, its body readers
//! have no cap, and the builder alone cost 2.5 KB gzipped).
//!
//! No answer is trusted with memory: every body is read through [`crate::body`], into
//! a sink that refuses the first byte past what a valid answer holds.

use std::cell::RefCell;

use coffer_core::ErrorCode;
use coffer_core::proto::ErrorBody;
use coffer_core::proto::answer::Answer;
use js_sys::Uint8Array;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Request, RequestInit, Response};

use crate::body::{Sink, read_capped, stream_into};
use crate::error::{SdkError, SdkResult, describe_js};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`, in a window or a worker alike.
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> js_sys::Promise;
}

/// A connection to one accelerator.
pub struct Http {
    /// Origin (and optional path prefix) of the accelerator, without a trailing `/`.
    base: String,
    /// The session token, once signed in; sent as `Authorization: Bearer`.
    token: RefCell<Option<String>>,
}

impl Http {
    /// Checks the URL and keeps it.
    pub fn new(url: &str) -> SdkResult<Self> {
        let base = url.trim_end_matches('/');
        let parsed = web_sys::Url::new(base).map_err(|_| {
            SdkError::invalid(format!("url {url:?} is not an absolute URL such as \"http://127.0.0.1:8080\""))
        })?;
        let scheme = parsed.protocol();
        if scheme != "http:" && scheme != "https:" {
            return Err(SdkError::invalid(format!("url must be http: or https:, not {scheme}")));
        }
        Ok(Http { base: base.to_owned(), token: RefCell::new(None) })
    }

    /// The accelerator's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The accelerator's origin as this client reaches it (`scheme://host[:port]`,
    /// the URL standard's serialisation): what a login signature binds.
    pub fn origin(&self) -> String {
        web_sys::Url::new(&self.base).map(|url| url.origin()).unwrap_or_else(|_| self.base.clone())
    }

    /// The change feed's websocket URL.
    pub fn feed_url(&self) -> String {
        let rest = self.base.strip_prefix("http").unwrap_or(&self.base);
        format!("ws{rest}/v1/kv/feed")
    }

    /// The current session token.
    pub fn token(&self) -> Option<String> {
        self.token.borrow().clone()
    }

    /// Sets or clears the session token.
    pub fn set_token(&self, token: Option<String>) {
        *self.token.borrow_mut() = token;
    }

    /// `POST path` with a JSON body, expecting a JSON answer.
    pub async fn post<B: Serialize, R: Answer>(&self, path: &str, body: &B) -> SdkResult<R> {
        let response = self.send("POST", path, Body::json(body), None).await?;
        read_json(response).await
    }

    /// `POST path` with a JSON body, expecting no answer body.
    pub async fn post_empty<B: Serialize>(&self, path: &str, body: &B) -> SdkResult<()> {
        self.send("POST", path, Body::json(body), None).await.map(discard)
    }

    /// `GET path`, expecting a JSON answer.
    pub async fn get<R: Answer>(&self, path: &str) -> SdkResult<R> {
        let response = self.send("GET", path, Body::None, None).await?;
        read_json(response).await
    }

    /// `DELETE path`, expecting a JSON answer.
    pub async fn delete<R: Answer>(&self, path: &str) -> SdkResult<R> {
        let response = self.send("DELETE", path, Body::None, None).await?;
        read_json(response).await
    }

    /// `PUT path` with a binary body, expecting no answer body.
    pub async fn put_bytes(&self, path: &str, bytes: &Uint8Array, signal: Option<&AbortSignal>) -> SdkResult<()> {
        self.send("PUT", path, Body::Bytes(bytes), signal).await.map(discard)
    }

    /// `POST path` with a JSON body, streaming the binary answer into `sink`, which
    /// refuses it as soon as it passes what a valid answer holds.
    pub async fn post_into<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        sink: &mut impl Sink,
        signal: Option<&AbortSignal>,
    ) -> SdkResult<()> {
        let response = self.send("POST", path, Body::json(body), signal).await?;
        stream_into(&response, sink, signal).await
    }

    /// Sends one request; a non-2xx answer becomes the accelerator's error.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
        signal: Option<&AbortSignal>,
    ) -> SdkResult<Response> {
        let init = RequestInit::new();
        init.set_method(method);
        let content_type = match &body {
            Body::None => None,
            Body::Json(text) => {
                init.set_body(&JsValue::from_str(text.as_str()));
                Some("application/json")
            }
            Body::Bytes(bytes) => {
                init.set_body(bytes);
                Some("application/octet-stream")
            }
        };
        if let Some(signal) = signal {
            init.set_signal(Some(signal));
        }
        let url = format!("{}{path}", self.base);
        let request = Request::new_with_str_and_init(&url, &init)
            .map_err(|e| SdkError::invalid(format!("cannot build a request to {url}: {}", describe_js(&e))))?;
        let headers = request.headers();
        if let Some(content_type) = content_type {
            headers.set("content-type", content_type).expect("a valid header");
        }
        if let Some(token) = self.token.borrow().as_deref() {
            // The token comes from the accelerator (or storage): one that no header can
            // carry is refused here rather than trusted to `Headers.set`, which throws.
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(SdkError::new(
                    ErrorCode::Integrity,
                    "the session token holds characters no HTTP header can carry; sign in again",
                ));
            }
            headers.set("authorization", &format!("Bearer {token}")).expect("a valid header");
        }
        let response: Response = JsFuture::from(global_fetch(&request))
            .await
            .map_err(|e| {
                if signal.is_some_and(AbortSignal::aborted) {
                    return SdkError::aborted();
                }
                SdkError::network(format!(
                    "could not reach the accelerator at {}: {} — check the url and that it is running",
                    self.base,
                    describe_js(&e)
                ))
            })?
            .unchecked_into();
        if response.ok() {
            return Ok(response);
        }
        Err(error_from(response).await)
    }
}

/// A request body.
enum Body<'a> {
    /// No body.
    None,
    /// JSON text.
    Json(String),
    /// Raw bytes.
    Bytes(&'a Uint8Array),
}

impl Body<'_> {
    fn json<B: Serialize>(body: &B) -> Self {
        Body::Json(serde_json::to_string(body).expect("wire types always serialize"))
    }
}

/// Drops an answer's body unread (routes that answer 204, or whose body is not used).
fn discard(response: Response) {
    if let Some(body) = response.body() {
        // A cancelled body only tells the browser to stop receiving it.
        let _ = body.cancel();
    }
}

async fn read_json<R: Answer>(response: Response) -> SdkResult<R> {
    let bytes = read_capped(&response, R::MAX_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        SdkError::new(
            ErrorCode::Network,
            format!("the accelerator answered with something this SDK cannot read ({e}); are the SDK and the accelerator the same version?"),
        )
    })
}

async fn error_from(response: Response) -> SdkError {
    let status = response.status();
    let bytes = match read_capped(&response, ErrorBody::MAX_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) if e.code == ErrorCode::TooLarge => Vec::new(),
        Err(e) => return e,
    };
    // Readable across origins because the accelerator exposes it (CORS).
    let retry_after_ms = response
        .headers()
        .get("retry-after")
        .ok()
        .flatten()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .map(|secs| secs.saturating_mul(1000));
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => SdkError { retry_after_ms, ..SdkError::new(body.code, body.message) },
        // A gateway in front of the accelerator (haproxy, a CDN) with no accelerator
        // behind it answering: as unreachable as no answer at all.
        Err(_) if matches!(status, 502..=504) => {
            SdkError::network(format!("the accelerator did not answer: a gateway in front of it said HTTP {status}"))
        }
        Err(_) => {
            let code = if status >= 500 { ErrorCode::Internal } else { ErrorCode::Network };
            SdkError::new(code, format!("the accelerator answered HTTP {status} without an error body"))
        }
    }
}
