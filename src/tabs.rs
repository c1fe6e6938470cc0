//! What the tabs of one signed-in user share on this origin (SPEC.md D.4): a
//! BroadcastChannel named by the account's device owner tag, over which the change
//! feed's leader passes on the feed's frames and a sign-out reaches every tab; and
//! the Web Locks that elect that leader and keep an upload resuming in one tab at a
//! time. The channel carries what the accelerator sent (kv values still sealed) and
//! sequence numbers, nothing else.

use coffer_core::ErrorCode;
use coffer_core::tabs;
pub use coffer_core::tabs::TabMessage;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::{SdkError, SdkResult, describe_js};

#[wasm_bindgen(module = "/src/browser.js")]
extern "C" {
    #[wasm_bindgen(js_name = Tabs)]
    type JsTabs;
    #[wasm_bindgen(constructor)]
    fn new(name: &str, on_message: &Function) -> JsTabs;
    #[wasm_bindgen(method)]
    fn shared(this: &JsTabs) -> bool;
    #[wasm_bindgen(method)]
    fn post(this: &JsTabs, text: &str);
    #[wasm_bindgen(method)]
    fn close(this: &JsTabs);

    #[wasm_bindgen(js_name = holdLock)]
    fn hold_lock(name: &str, granted: &Function) -> Function;
    #[wasm_bindgen(js_name = tryLock)]
    fn try_lock(name: &str) -> Promise;
    #[wasm_bindgen(js_name = waitLock)]
    fn wait_lock_js(name: &str, signal: &web_sys::AbortSignal) -> Promise;
}

/// One client's end of its account's channel.
pub struct Tabs {
    js: JsTabs,
    owner: String,
    _on_message: Closure<dyn FnMut(String)>,
}

impl Tabs {
    /// Opens the channel of the account whose device owner tag is `owner`.
    pub fn open(owner: String, mut on_message: impl FnMut(TabMessage) + 'static) -> Tabs {
        let on_message = Closure::<dyn FnMut(String)>::new(move |text: String| {
            if let Some(message) = TabMessage::from_text(&text) {
                on_message(message);
            }
        });
        let js = JsTabs::new(&tabs::channel_name(&owner), on_message.as_ref().unchecked_ref());
        Tabs { js, owner, _on_message: on_message }
    }

    /// Whether other tabs can be reached and a leader elected (BroadcastChannel and
    /// Web Locks); where not, each client keeps its own feed.
    pub fn shared(&self) -> bool {
        self.js.shared()
    }

    /// Tells every other client of the account on this origin.
    pub fn post(&self, message: &TabMessage) {
        self.js.post(&message.to_text());
    }

    /// Waits to lead the account's change feed; `granted` runs once this client does.
    /// Dropping the lease stops waiting, or hands the lead on.
    pub fn lead(&self, granted: impl FnOnce() + 'static) -> Lease {
        let granted = Closure::once_into_js(granted);
        Lease(hold_lock(&tabs::feed_lock(&self.owner), granted.unchecked_ref()))
    }
}

impl Drop for Tabs {
    fn drop(&mut self) {
        self.js.close();
    }
}

/// A Web Lock held (or waited for) until dropped.
pub struct Lease(Function);

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.0.call0(&JsValue::NULL);
    }
}

/// Waits for the Web Lock `name` and holds it until the lease is dropped. Dropped
/// while waiting, it stops waiting, and lets go of a lock granted meanwhile.
pub async fn wait_lock(name: &str) -> SdkResult<Lease> {
    let failed = |e: &JsValue| SdkError::new(ErrorCode::Internal, format!("Web Locks failed: {}", describe_js(e)));
    let mut waiting = AbortOnDrop(Some(web_sys::AbortController::new().map_err(|e| failed(&e))?));
    let signal = waiting.0.as_ref().expect("set above").signal();
    let release = JsFuture::from(wait_lock_js(name, &signal)).await.map_err(|e| failed(&e))?;
    waiting.0 = None;
    Ok(Lease(release.unchecked_into()))
}

/// Aborts its controller when dropped, unless taken out first.
struct AbortOnDrop(Option<web_sys::AbortController>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take() {
            controller.abort();
        }
    }
}

/// Holds upload `id` for this tab, or `Conflict` if another tab is resuming it.
pub async fn hold_upload(id: &str) -> SdkResult<Lease> {
    let answer = JsFuture::from(try_lock(&tabs::upload_lock(id)))
        .await
        .map_err(|e| SdkError::new(ErrorCode::Internal, format!("Web Locks failed: {}", describe_js(&e))))?;
    match answer.dyn_into::<Function>() {
        Ok(release) => Ok(Lease(release)),
        Err(_) => Err(SdkError::new(
            ErrorCode::Conflict,
            format!("upload {id} is being resumed in another tab; wait for it there, or close that tab"),
        )),
    }
}
