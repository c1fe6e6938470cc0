//! Request bodies held in memory: every body waits for room in one budget before it
//! is read, strangers send only small ones, and each user has only so many large
//! ones in flight.
//!
//! A body is read whole before its handler runs: a JSON request up to
//! [`crate::config::Config::max_body_bytes`], a shard upload up to 16 MiB, a commit's
//! list of shards up to ~67 MB. Without a budget, sixteen thousand connections each
//! trickling one would hold sixteen thousand bodies. [`budgeted`] runs before the
//! route's handler, with the route's [`Rule`]:
//!
//! - a body must declare its length (`Content-Length`; a chunked one could not be
//!   budgeted and is refused), no more than the rule's `max` (`TooLarge`);
//! - unless the route is open to [`Senders::Anyone`] (sign-in, whose bodies are a few
//!   hundred bytes), the session is checked first, so strangers hold no room; the
//!   session found is handed to the handler, which does not look it up again;
//! - [`Senders::Uploaders`] (shard uploads, commits) also take a place among the
//!   user's large bodies in flight ([`crate::config::Limits::max_uploads_per_user`];
//!   one more is `RateLimited`);
//! - then the body waits for its declared length in the budget
//!   ([`crate::config::Limits::body_buffer_bytes`]; the request timeout bounds the
//!   wait).
//!
//! Both are given back when the handler answers. A request without a body (every
//! `GET`, the feed's upgrade) passes straight through.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::per_user::Slot;
use crate::session::Authed;
use crate::state::AppState;

/// Budget permits are counted in KiB.
const PERMIT_BYTES: u64 = 1024;

/// The budget's size in permits.
pub fn permits(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(PERMIT_BYTES)).unwrap_or(Semaphore::MAX_PERMITS).min(Semaphore::MAX_PERMITS)
}

/// Who may send a route's bodies, and what each one holds while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Senders {
    /// Anyone, signed in or not (sign-up and sign-in): room in the budget only.
    Anyone,
    /// Signed-in users: room in the budget.
    Users,
    /// Signed-in users, each with a bounded number in flight: room in the budget and
    /// a [`Slot`].
    Uploaders,
}

/// A route's body rule: the longest body it takes and who may send one.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The longest body, in bytes.
    pub max: usize,
    /// Who may send one.
    pub senders: Senders,
}

/// The middleware: see the module docs. A body declaring more than the rule's
/// `max` is `TooLarge` before anything is read or reserved.
pub async fn budgeted(State((state, rule)): State<(AppState, Rule)>, request: Request, next: Next) -> Response {
    match admit(&state, rule, request).await {
        Ok((request, _held)) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

/// What a body holds while its handler runs: nothing, or a slot and room.
type Held = (Option<Slot>, Option<tokio::sync::OwnedSemaphorePermit>);

async fn admit(state: &AppState, rule: Rule, request: Request) -> Result<(Request, Held), ApiError> {
    let (mut parts, body) = request.into_parts();
    let len = http_body::Body::size_hint(&body).exact();
    if len == Some(0) {
        return Ok((Request::from_parts(parts, body), (None, None)));
    }
    let authed = match rule.senders {
        Senders::Anyone => None,
        Senders::Users | Senders::Uploaders => Some(Authed::from_request_parts(&mut parts, state).await?),
    };
    let Some(len) = len else {
        return Err(ApiError::invalid("send this body with a Content-Length header (not chunked)"));
    };
    if len > rule.max as u64 {
        return Err(ApiError::too_large(format!(
            "this body says {len} bytes; the most this route takes is {}",
            rule.max
        )));
    }
    let slot = match (&authed, rule.senders) {
        (Some(authed), Senders::Uploaders) => {
            Some(state.bodies_per_user.enter(&authed.session.user_id).ok_or_else(|| {
                ApiError::rate_limited(
                    format!("at most {} uploads at once per user; wait for one to finish", state.bodies_per_user.cap()),
                    Duration::from_secs(1),
                )
            })?)
        }
        _ => None,
    };
    let wanted = u32::try_from(permits(len).max(1)).unwrap_or(u32::MAX);
    let room = Arc::clone(&state.body_budget)
        .acquire_many_owned(wanted)
        .await
        .map_err(|_| ApiError::internal("the body budget was closed"))?;
    if let Some(authed) = authed {
        parts.extensions.insert(authed);
    }
    Ok((Request::from_parts(parts, body), (slot, Some(room))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_kibibytes_rounded_up() {
        assert_eq!(permits(1), 1);
        assert_eq!(permits(16 * 1024 * 1024), 16 * 1024);
    }
}
