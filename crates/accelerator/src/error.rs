//! The one error type every handler returns, and the extractors (JSON body, raw
//! body, path) that turn malformed requests into it.
//!
//! Every failure answers with the status of its [`ErrorCode`] and an
//! [`ErrorBody`] `{code, message}`: never plain text, never a `Debug` dump. Details
//! of internal failures are logged, not sent.

use coffer_core::Coded;
use std::borrow::Cow;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coffer_core::ErrorCode;
use coffer_core::proto::storage::Role;
use coffer_core::proto::{ErrorBody, MAX_PAGE_ENTRIES, PageQuery};
use coffer_core::validate::{MAX_STORED_NAME_BYTES, ValidationError};
use serde::de::DeserializeOwned;

use crate::store::{PageRequest, Quota, StoreError};

/// A failure to report to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The stable code; it also picks the HTTP status.
    pub code: ErrorCode,
    /// What happened and what to do, for a person.
    pub message: Cow<'static, str>,
    /// For `RateLimited`: when to try again, sent as `Retry-After` (whole seconds,
    /// rounded up).
    pub retry_after: Option<Duration>,
}

/// The message for every failed sign-in, whatever the reason, so that a failure
/// reveals nothing about which part was wrong.
pub const SIGN_IN_FAILED: &str = "wrong username or password, or the sign-in took too long; try again";

/// The message for every failed proof of the root (SPEC.md §3.9) when a recovery
/// code is set, whatever the reason (a proof that does not check, a challenge used
/// up, expired, unknown or issued for another username).
pub const ROOT_PROOF_FAILED: &str = "the proof that this device holds the account's root secret did not check (or its \
     challenge was used up or too old): a session token alone cannot set a recovery code; ask for a new challenge \
     (POST /v1/auth/challenge) and prove the root for it";

/// The message for every failed publication of an account's public key
/// (`POST /v1/auth/public-key`), whatever the reason (a signature that does not
/// check, a challenge used up, expired, unknown or issued for another username).
pub const PUBLICATION_FAILED: &str = "the publication of this account's public key must be signed with the password's \
     login key for a fresh challenge (POST /v1/auth/challenge); a session token alone cannot publish one";

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError { code, message: message.into(), retry_after: None }
    }

    /// Too many requests; `wait` says when the next one may succeed.
    pub fn rate_limited(message: impl Into<Cow<'static, str>>, wait: Duration) -> Self {
        ApiError { retry_after: Some(wait), ..Self::new(ErrorCode::RateLimited, message) }
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

    /// A failed proof of the root (see [`ROOT_PROOF_FAILED`]).
    pub fn root_proof_failed() -> Self {
        Self::new(ErrorCode::Unauthorized, ROOT_PROOF_FAILED)
    }

    /// A failed publication of the account's public key (see [`PUBLICATION_FAILED`]).
    pub fn publication_failed() -> Self {
        Self::new(ErrorCode::Unauthorized, PUBLICATION_FAILED)
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
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
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
            StoreError::UsernameTaken => ApiError::new(ErrorCode::Conflict, "that username is taken; pick another"),
            StoreError::KeyPublished => ApiError::new(
                ErrorCode::Conflict,
                "this account's public key is already published and never changes (it derives from the \
                 account's root secret); this is another key",
            ),
            StoreError::NoPublicKey => ApiError::new(
                ErrorCode::Conflict,
                "publish this account's public key first (POST /v1/auth/public-key): a space's members seal \
                 its keys to it",
            ),
            StoreError::StaleEpoch { current } => ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "the space's key has changed since (it is at epoch {current}); read its keys again \
                     (GET /v1/spaces/{{space}}/keys) and use the current one"
                ),
            ),
            StoreError::RotationDue => ApiError::new(
                ErrorCode::Conflict,
                "a member left: the space's key must be rotated (POST /v1/spaces/{space}/rotate) before new \
                 invites or files",
            ),
            StoreError::NotNextEpoch { current } => ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "the space is at epoch {current}, so a rotation must make epoch {}; another member may have \
                     rotated first: read the keys again",
                    u64::from(current) + 1
                ),
            ),
            StoreError::RosterChanged => ApiError::new(
                ErrorCode::Conflict,
                "the space's members changed: a rotation lists exactly the members with a roster entry; read \
                 them again and redo the rotation",
            ),
            StoreError::NotInRoster => ApiError::new(
                ErrorCode::Conflict,
                "enter the roster first (POST /v1/spaces/{space}/roster): only a member with a roster entry \
                 may rotate the space's key",
            ),
            StoreError::NoRotationDue => ApiError::new(
                ErrorCode::Conflict,
                "no rotation is due: the space's key changes only when a member leaves or is removed; read the \
                 keys again (GET /v1/spaces/{space}/keys) for the current epoch",
            ),
            StoreError::SpaceTaken => {
                ApiError::new(ErrorCode::Conflict, "a space with that id exists; draw a new random id")
            }
            StoreError::FileTaken => {
                ApiError::new(ErrorCode::Conflict, "a file with that id exists in this space; draw a new random id")
            }
            StoreError::NotMember => ApiError::new(
                ErrorCode::Forbidden,
                "you are not a member of this space (or it does not exist); join it with an invite",
            ),
            StoreError::RoleTooLow { needed: Role::Owner } => {
                ApiError::new(ErrorCode::Forbidden, "only an owner of this space may do this")
            }
            StoreError::RoleTooLow { .. } => ApiError::new(
                ErrorCode::Forbidden,
                "only writers and owners of this space may do this; readers may only read",
            ),
            StoreError::LastOwner => ApiError::new(
                ErrorCode::Conflict,
                "a space keeps an owner while it has members: its last owner cannot leave or be removed \
                 until the other members are removed",
            ),
            StoreError::NoSuchMember => ApiError::not_found("that user is not a member of this space"),
            StoreError::CommitWithdrawn => ApiError::new(
                ErrorCode::Forbidden,
                "the space was deleted, or you lost the right to write in it, while this file was being committed",
            ),
            StoreError::MissingShards { missing, listed } => ApiError::invalid(format!(
                "{missing} of the file's {listed} shards are not stored: upload every shard before committing"
            )),
            StoreError::QuotaExceeded { limit: Quota::Space, used, adding, quota } => ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "space quota: this file needs {adding} bytes but the space uses {used} of its {quota}; \
                     delete files from the space to make room"
                ),
            ),
            StoreError::QuotaExceeded { limit: Quota::User, used, adding, quota } => ApiError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "user allowance: this needs {adding} more bytes but your account stores {used} of its {quota} \
                     (kv values, uploads not yet committed, files you added, spaces you made); delete some to \
                     make room"
                ),
            ),
            StoreError::InviteInvalid => ApiError::new(
                ErrorCode::Forbidden,
                "this invite is not valid for that space; check the token or ask an owner for a new one",
            ),
            StoreError::InviteExpired => {
                ApiError::new(ErrorCode::Forbidden, "this invite has expired; ask an owner of the space for a new one")
            }
            StoreError::InviteUsedUp => ApiError::new(
                ErrorCode::Forbidden,
                "this invite has been used as many times as it allows; ask an owner of the space for a new one",
            ),
            StoreError::OverDeclared { stored, bound } => ApiError::invalid(format!(
                "the listed shards hold {stored} bytes, more than the {bound} a file of the declared size needs"
            )),
            StoreError::TooManyInvites { max } => ApiError::new(
                ErrorCode::QuotaExceeded,
                format!("this space has {max} invites that have not expired, the most it may; wait for some to expire"),
            ),
            StoreError::BadCursor => ApiError::invalid(
                "`after` is not a cursor this list handed out; start again from the first page without it",
            ),
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

/// A raw request body (a shard), read up to the route's body limit; over it is
/// `TooLarge`.
#[derive(Debug, Clone)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) => Err(body_rejection(&rejection)),
        }
    }
}

fn body_rejection(rejection: &BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large("the request body is over this route's size limit")
    } else {
        ApiError::invalid("the request body could not be read")
    }
}

/// `axum::extract::Query`, except that a rejection is an `InvalidInput` [`ApiError`].
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => {
                Err(ApiError::invalid(format!("the query string is malformed: {}", rejection.body_text())))
            }
        }
    }
}

/// The page a list request asks for, checked: `limit` within 1 to
/// [`MAX_PAGE_ENTRIES`] (the default), `after` no longer than any cursor.
pub fn page_request(query: PageQuery) -> Result<PageRequest, ApiError> {
    let limit = query.limit.unwrap_or(MAX_PAGE_ENTRIES);
    if limit == 0 || limit > MAX_PAGE_ENTRIES {
        return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE_ENTRIES}")));
    }
    if query.after.as_ref().is_some_and(|after| after.len() > MAX_CURSOR_BYTES) {
        return Err(ApiError::invalid("`after` is longer than any cursor; pass the `next` of the previous page"));
    }
    Ok(PageRequest { after: query.after, limit: limit as usize })
}

/// Longest `after` accepted: a kv id, a stored name of up to
/// [`MAX_STORED_NAME_BYTES`] (a sealed name), is the longest cursor; the others
/// (`"{ms}.{n}"`) are a few dozen bytes.
const MAX_CURSOR_BYTES: usize = MAX_STORED_NAME_BYTES;

/// `axum::extract::Path`, except that a rejection is an `InvalidInput` [`ApiError`].
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::invalid(format!(
                "the request path is malformed: {}",
                rejection.body_text().trim_start_matches("Invalid URL: ")
            ))),
        }
    }
}
