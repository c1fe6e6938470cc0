//! kv keys an SDK before sealed names stored under plaintext names, moved to their
//! sealed names (SPEC.md §4.4) once per sign-in, before any kv call goes out: the
//! accelerator lists them (`GET /v1/kv/legacy`) and renames them in place
//! (`POST /v1/kv/rename`), each with its value and its change-log entry. A value's
//! envelope binds the plaintext names, which do not change, so nothing is sealed
//! again, and a key written meanwhile under its sealed name stands (the accelerator
//! drops the legacy one). Only keys whose listed value opens under their names are
//! renamed (`coffer_core::legacy`): an accelerator listing guessed names learns
//! nothing.

use std::cell::RefCell;
use std::rc::Rc;

use coffer_core::ErrorCode;
use coffer_core::legacy::Move;
use coffer_core::proto::{KvLegacyResponse, KvRenameRequest, KvRenameResponse};
use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, Shared};

use crate::error::SdkResult;
use crate::http::Http;
use crate::session::User;
use crate::timer;

/// Where an account's move to sealed names stands on this client.
#[derive(Default)]
pub struct LegacyNames {
    state: RefCell<State>,
}

#[derive(Default)]
enum State {
    /// Not asked yet, or the last attempt failed (the next kv call tries again).
    #[default]
    Unchecked,
    /// Under way; every kv call waits for it.
    Moving(Shared<LocalBoxFuture<'static, SdkResult<()>>>),
    /// No legacy key is left.
    Done,
}

impl LegacyNames {
    /// Starts the move if nothing has yet, so that it runs while the app loads.
    pub fn start(http: &Rc<Http>, user: &Rc<User>) {
        drop(moving(http, user));
    }

    /// Waits until no kv key of the account is left under a plaintext name; `Ok` at
    /// once when that is known.
    pub async fn settled(http: &Rc<Http>, user: &Rc<User>) -> SdkResult<()> {
        match moving(http, user) {
            Some(moving) => moving.await,
            None => Ok(()),
        }
    }

    /// Records how the move ended, dropping its future (which holds the user).
    fn finish(&self, moved: bool) {
        *self.state.borrow_mut() = if moved { State::Done } else { State::Unchecked };
    }
}

/// The move under way, started if need be; `None` once it is done.
fn moving(http: &Rc<Http>, user: &Rc<User>) -> Option<Shared<LocalBoxFuture<'static, SdkResult<()>>>> {
    let mut state = user.legacy.state.borrow_mut();
    match &*state {
        State::Done => None,
        State::Moving(moving) => Some(moving.clone()),
        State::Unchecked => {
            let moving = move_all(Rc::clone(http), Rc::clone(user)).boxed_local().shared();
            // Runs without waiting for a kv call, and records its outcome: done, or to
            // be tried again by the next call.
            let (running, user) = (moving.clone(), Rc::downgrade(user));
            wasm_bindgen_futures::spawn_local(async move {
                let moved = running.await.is_ok();
                if let Some(user) = user.upgrade() {
                    user.legacy.finish(moved);
                }
            });
            *state = State::Moving(moving.clone());
            Some(moving)
        }
    }
}

/// Renames the listed legacy keys, page by page, until the list is empty (which
/// keys, and to what, `legacy::Move` decides).
async fn move_all(http: Rc<Http>, user: Rc<User>) -> SdkResult<()> {
    let mut moving = Move::new(&user.user_id, &user.kv, &user.names);
    loop {
        let page: KvLegacyResponse = http.get("/v1/kv/legacy").await?;
        let Some(renames) = moving.renames(page.keys)? else { return Ok(()) };
        rename(&http, &KvRenameRequest { renames }).await?;
    }
}

/// Times a rename is tried while the accelerator answers `RateLimited`: the route
/// shares the account's places for large bodies with its uploads, which another tab
/// may be making.
const RENAME_ATTEMPTS: u32 = 5;
/// The longest wait between them, whatever the accelerator asks: kv calls wait too.
const MAX_RENAME_WAIT_MS: u32 = 5_000;

/// Asks for the renames, again after the wait the accelerator asks for while it is
/// busy with this account's uploads.
async fn rename(http: &Http, request: &KvRenameRequest) -> SdkResult<KvRenameResponse> {
    let mut attempt = 0;
    loop {
        match http.post("/v1/kv/rename", request).await {
            Err(e) if e.code == ErrorCode::RateLimited && attempt + 1 < RENAME_ATTEMPTS => {
                let asked = e.retry_after_ms.unwrap_or(0).min(MAX_RENAME_WAIT_MS);
                timer::sleep(timer::backoff_ms(attempt, 200.0, 2_000.0).max(asked)).await;
                attempt += 1;
            }
            answer => return answer,
        }
    }
}
