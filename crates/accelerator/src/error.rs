//! The one error type every handler returns, and the JSON extractor that turns
//! malformed bodies into it.
//!
//! Every failure answers with the status of its [`ErrorCode`] and an
//! [`ErrorBody`] `{code, message}`: never plain text, never a `Debug` dump. Details
//! of internal failures are logged, not sent.

use std::borrow::Cow;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffer_core::ErrorCode;
use coffer_core::proto::ErrorBody;
use coffer_core::validate::ValidationError;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

/// A failure to report to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The stable code; it also picks the HTTP status.
    pub code: ErrorCode,
    /// What happened and what to do, for a person.
    pub message: Cow<'static, str>,
}

/// The message for every failed sign-in, whatever the reason, so that a failure
/// reveals nothing about which part was wrong.
pub const SIGN_IN_FAILED: &str = "wrong username or password, or the sign-in took too long; try again";

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError { code, message: message.into() }
    }

    /// Malformed input.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// Well-formed input over a size limit.
    pub fn too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }

    /// No valid session.
    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "no valid session: sign in again")
    }

    /// A failed sign-in or password check (see [`SIGN_IN_FAILED`]).
    pub fn sign_in_failed() -> Self {
        Self::new(ErrorCode::Unauthorized, SIGN_IN_FAILED)
    }

    /// Something absent.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// An unexpected failure; the detail is for the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(ErrorCode::Internal, "the accelerator failed unexpectedly; try again")
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { code: self.code, message: self.message.clone().into_owned() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        ApiError::new(err.code(), err.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => {
                ApiError::new(ErrorCode::Conflict, "that username is taken; pick another")
            }
            StoreError::Backend(detail) => ApiError::internal(detail),
        }
    }
}

/// `axum::Json`, except that every rejection is an [`ApiError`]: bad JSON, wrong
/// types and missing fields are `InvalidInput`, a body over the limit is `TooLarge`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::invalid(format!(
            "the request body does not have the expected shape: {}",
            e.body_text().trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        )),
        JsonRejection::JsonSyntaxError(_) => ApiError::invalid("the request body is not valid JSON"),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("send the request body as JSON with `Content-Type: application/json`")
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::too_large("the request body is over the accelerator's size limit")
        }
        _ => ApiError::invalid("the request body could not be read"),
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
