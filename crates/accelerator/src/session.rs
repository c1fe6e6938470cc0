//! Who is calling: the `Authorization: Bearer <token>` extractor, and the form a
//! session token is stored in.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use coffer_core::{ErrorCode, b64};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::Session;

/// The stored form of a session token: SHA-256 of its bytes. `None` if the text
/// is not a token this accelerator could have issued.
pub fn token_hash(token: &str) -> Option<[u8; 32]> {
    let bytes: [u8; 32] = b64::decode_array(token)?;
    Some(Sha256::digest(bytes).into())
}

/// A request made with a live session (`Authorization: Bearer <token>`).
#[derive(Clone)]
pub struct Authed {
    /// The session and its user.
    pub session: Session,
    /// The token's hash, to revoke or keep this very session.
    pub token_hash: [u8; 32],
}

impl Authed {
    /// Checks a bearer token against the records.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let hash = token_hash(token).ok_or_else(ApiError::unauthorized)?;
        let now = now_ms();
        let session = state.records(move |r| r.session(&hash, now)).await?.ok_or_else(ApiError::unauthorized)?;
        Ok(Authed { session, token_hash: hash })
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Found already where the body was budgeted (crate::budget).
        if let Some(authed) = parts.extensions.get::<Authed>() {
            return Ok(authed.clone());
        }
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "sign in first: send the session token as `Authorization: Bearer <token>`",
            )
        })?;
        Authed::from_token(state, token.trim()).await
    }
}
