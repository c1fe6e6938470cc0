//! Keeping a session across reloads (`remember` in `signIn`/`signUp`).
//!
//! | `remember` | where | survives |
//! |---|---|---|
//! | `"none"` | nowhere | nothing: the tab's memory only |
//! | `"session"` (default) | `sessionStorage` | reloads of this tab |
//! | `"local"` | `localStorage` | browser restarts, every tab of the origin |
//!
//! What is kept: the accelerator URL, user id, username, session token, the
//! account's root secret (base64url), whether the client keeps kv offline, and the
//! kv sequence number it signed in at. Anyone who can read this origin's storage can
//! therefore read the user's data until the session is signed out — which clears it.

use coffer_core::account::RootSecret;
use coffer_core::b64;
use serde::{Deserialize, Serialize};

use crate::error::{SdkError, SdkResult};
use crate::options::Text;

/// Where a session is remembered: the `remember` option, `"session"` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "Text")]
pub enum Remember {
    /// Not at all.
    None,
    /// `sessionStorage`.
    #[default]
    Session,
    /// `localStorage`.
    Local,
}

impl TryFrom<Text> for Remember {
    type Error = String;

    fn try_from(Text(name): Text) -> Result<Self, String> {
        match name.as_str() {
            "session" => Ok(Remember::Session),
            "none" => Ok(Remember::None),
            "local" => Ok(Remember::Local),
            other => Err(format!("must be \"none\", \"session\" or \"local\", not {other:?}")),
        }
    }
}

/// What is written to storage.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// Format version of this record.
    pub v: u32,
    /// The account's id.
    pub user_id: String,
    /// The account's username.
    pub username: String,
    /// The session token.
    pub token: String,
    /// The root secret, base64url.
    pub root: String,
    /// Whether the client keeps kv offline (`offline: true`); absent before it existed.
    #[serde(default)]
    pub offline: bool,
    /// The kv sequence number at sign-in, where an offline `resume` starts the feed.
    #[serde(default)]
    pub kv_seq: u64,
}

impl Saved {
    /// The root secret, if the record is intact.
    pub fn root(&self) -> Option<RootSecret> {
        b64::decode_array::<32>(&self.root).map(RootSecret::from_bytes)
    }
}

fn key(url: &str) -> String {
    format!("coffer:session:{url}")
}

fn storage(kind: Remember) -> Option<web_sys::Storage> {
    let window = web_sys::window()?;
    match kind {
        Remember::None => None,
        Remember::Session => window.session_storage().ok().flatten(),
        Remember::Local => window.local_storage().ok().flatten(),
    }
}

/// Saves a session where `kind` says (and forgets it everywhere else).
pub fn save(kind: Remember, url: &str, saved: &Saved) -> SdkResult<()> {
    clear(url);
    if kind == Remember::None {
        return Ok(());
    }
    let store = storage(kind).ok_or_else(|| {
        SdkError::invalid("this environment has no sessionStorage/localStorage; pass remember: \"none\"")
    })?;
    let text = serde_json::to_string(saved).expect("Saved serializes");
    store.set_item(&key(url), &text).map_err(|_| {
        SdkError::invalid(
            "the browser refused to store the session (storage full or disabled); pass remember: \"none\"",
        )
    })
}

/// Loads a saved session for `url`, from `sessionStorage` first.
pub fn load(url: &str) -> Option<(Remember, Saved)> {
    [Remember::Session, Remember::Local].into_iter().find_map(|kind| {
        let text = storage(kind)?.get_item(&key(url)).ok().flatten()?;
        let saved: Saved = serde_json::from_str(&text).ok()?;
        (saved.v == 1).then_some((kind, saved))
    })
}

/// Forgets any saved session for `url`.
pub fn clear(url: &str) {
    for kind in [Remember::Session, Remember::Local] {
        if let Some(store) = storage(kind) {
            let _ = store.remove_item(&key(url));
        }
    }
}
