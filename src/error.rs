//! The one conversion from any failure to what JavaScript sees: an `Error` whose
//! `name` is `"CofferError"`, whose `code` is a stable string (`NotFound`,
//! `InvalidInput`, …) and whose message says what to do.

use coffer_core::{Coded, ErrorCode};
use wasm_bindgen::prelude::*;

/// A failure on its way to JavaScript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkError {
    /// The stable code.
    pub code: ErrorCode,
    /// What happened and what to do about it.
    pub message: String,
    /// For `RateLimited`: how long the accelerator asked to wait (its `Retry-After`),
    /// in milliseconds; `retryAfterMs` on the JS error.
    pub retry_after_ms: Option<u32>,
}

impl SdkError {
    /// A failure with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        SdkError { code, message: message.into(), retry_after_ms: None }
    }

    /// Bad input from the caller.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// A call that needs a signed-in user, on a client without one.
    pub fn signed_out() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "this client is not signed in (anonymous, or signed out): use Client.signIn first",
        )
    }

    /// The caller's `AbortSignal` fired.
    pub fn aborted() -> Self {
        Self::new(ErrorCode::Aborted, "the operation was aborted by its AbortSignal")
    }

    /// The accelerator could not be reached.
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Network, message)
    }

    /// Whether the same request may succeed later: the accelerator could not be
    /// reached, failed inside, or asked to slow down.
    pub fn is_transient(&self) -> bool {
        matches!(self.code, ErrorCode::Network | ErrorCode::Internal | ErrorCode::RateLimited)
    }
}

/// Every core error family converts the same way: its own stable code and its
/// message, which already says what to do.
impl<E: Coded> From<E> for SdkError {
    fn from(e: E) -> Self {
        SdkError::new(e.code(), e.to_string())
    }
}

impl From<SdkError> for JsValue {
    fn from(e: SdkError) -> JsValue {
        let error = js_sys::Error::new(&e.message);
        error.set_name("CofferError");
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&error, &"code".into(), &e.code.as_str().into());
        if let Some(ms) = e.retry_after_ms {
            let _ = js_sys::Reflect::set(&error, &"retryAfterMs".into(), &f64::from(ms).into());
        }
        error.into()
    }
}

/// Reads the `code` back from a JS error made by [`SdkError`] (tests, re-thrown errors).
pub fn code_of(value: &JsValue) -> Option<String> {
    js_sys::Reflect::get(value, &"code".into()).ok()?.as_string()
}

/// Describes a thrown JS value for a message: its `message` if it has one.
pub fn describe_js(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    value.as_string().unwrap_or_else(|| "unknown JavaScript error".into())
}

/// Result of every SDK operation before it crosses into JavaScript.
pub type SdkResult<T> = Result<T, SdkError>;
