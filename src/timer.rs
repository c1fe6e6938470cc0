//! Waiting in async code (retry backoff), on the browser's timer.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::random;

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: u32) {
    let promise = Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout: Function = Reflect::get(&global, &"setTimeout".into())
            .expect("setTimeout exists in windows and workers")
            .unchecked_into();
        let _ = set_timeout.call2(&global, &resolve, &JsValue::from(ms));
    });
    let _ = JsFuture::from(promise).await;
}

/// Gives the page's event loop a turn (a macrotask), so CPU-heavy steps of several
/// chunks never run back to back in one long task that would freeze the page.
pub async fn yield_now() {
    sleep(0).await;
}

/// The delay before retry number `attempt` (0-based): exponential from `base_ms`,
/// capped at `max_ms`, drawn from the upper half so retries spread out.
pub fn backoff_ms(attempt: u32, base_ms: f64, max_ms: f64) -> u32 {
    let ceiling = (base_ms * 2f64.powi(attempt.min(20) as i32)).min(max_ms);
    (ceiling * (0.5 + 0.5 * random::unit())) as u32
}
