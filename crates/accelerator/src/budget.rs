//! Request bodies held in memory: large bodies (shard uploads, file commits) wait
//! for room in one budget before they are read, and each user has only so many in
//! flight.
//!
//! A shard upload is read whole before it is hashed and stored (up to 16 MiB), and a
//! commit's list of shards is parsed whole (up to ~67 MB). Without a budget, a
//! thousand such requests at once would hold a thousand bodies. [`budgeted`] runs
//! before the route's handler: it checks the session (strangers hold no room), takes
//! a place among the user's bodies in flight
//! ([`crate::config::Limits::max_uploads_per_user`]; one more is `RateLimited`), then
//! waits for the body's declared length in the budget
//! ([`crate::config::Limits::upload_buffer_bytes`]; the request timeout bounds the
//! wait). Both are given back when the handler answers. A body must declare its
//! length (`Content-Length`): a chunked one could not be budgeted and is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::auth::Authed;
use crate::error::ApiError;
use crate::server::AppState;

/// Budget permits are counted in KiB.
const PERMIT_BYTES: u64 = 1024;

/// The budget's size in permits.
pub fn permits(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(PERMIT_BYTES)).unwrap_or(Semaphore::MAX_PERMITS).min(Semaphore::MAX_PERMITS)
}

/// Budgeted bodies in flight per user.
pub struct PerUser {
    /// Users with a body in flight, and how many.
    counts: Mutex<HashMap<String, usize>>,
    /// How many one user may have.
    cap: usize,
}

/// One body in flight; counted until dropped.
pub struct Slot {
    /// Where it is counted.
    bodies: Arc<PerUser>,
    /// Whose it is.
    user_id: String,
}

impl PerUser {
    /// Allows `cap` bodies in flight per user.
    pub fn new(cap: usize) -> Self {
        PerUser { counts: Mutex::new(HashMap::new()), cap: cap.max(1) }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for one more body of `user_id`, unless they are at the cap.
    pub fn enter(self: &Arc<Self>, user_id: &str) -> Option<Slot> {
        let mut counts = self.counts();
        let n = counts.entry(user_id.to_owned()).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot { bodies: Arc::clone(self), user_id: user_id.to_owned() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.bodies.counts();
        if let Some(n) = counts.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

/// The middleware, for a route whose bodies are at most `max` bytes: see the module
/// docs. A body declaring more is `TooLarge` before anything is read or reserved.
pub async fn budgeted(State((state, max)): State<(AppState, usize)>, request: Request, next: Next) -> Response {
    match admit(&state, max, request).await {
        Ok((request, _slot, _room)) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn admit(
    state: &AppState,
    max: usize,
    request: Request,
) -> Result<(Request, Slot, tokio::sync::OwnedSemaphorePermit), ApiError> {
    let (mut parts, body) = request.into_parts();
    let authed = Authed::from_request_parts(&mut parts, state).await?;
    let Some(len) = http_body::Body::size_hint(&body).exact() else {
        return Err(ApiError::invalid("send this body with a Content-Length header (not chunked)"));
    };
    if len > max as u64 {
        return Err(ApiError::too_large(format!("this body says {len} bytes; the most this route takes is {max}")));
    }
    let slot = state.bodies_per_user.enter(&authed.session.user_id).ok_or_else(|| {
        ApiError::rate_limited(
            format!("at most {} uploads at once per user; wait for one to finish", state.bodies_per_user.cap),
            Duration::from_secs(1),
        )
    })?;
    let wanted = u32::try_from(permits(len).max(1)).unwrap_or(u32::MAX);
    let room = Arc::clone(&state.body_budget)
        .acquire_many_owned(wanted)
        .await
        .map_err(|_| ApiError::internal("the body budget was closed"))?;
    Ok((Request::from_parts(parts, body), slot, room))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_cap_slots() {
        let bodies = Arc::new(PerUser::new(2));
        let a = bodies.enter("ada").unwrap();
        let _b = bodies.enter("ada").unwrap();
        assert!(bodies.enter("ada").is_none());
        assert!(bodies.enter("bob").is_some());
        drop(a);
        assert!(bodies.enter("ada").is_some());
        assert_eq!(permits(1), 1);
        assert_eq!(permits(16 * 1024 * 1024), 16 * 1024);
    }
}
