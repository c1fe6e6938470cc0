//! The worker's side of the file pipeline: `coffer-worker.js` (shipped next to
//! `coffer.js`) instantiates the SDK's wasm in a module worker and hands every job
//! the page posts to [`run_worker_job`], which runs the very code the page would
//! ([`chunk`](super::chunk)) and answers with bytes the worker transfers back.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::chunk::{self, LoadChunk, StoreChunk};
use super::cipher::Engine;
use super::pool::{Job, Work};
use super::source::Part;
use crate::error::{SdkError, SdkResult};
use crate::session::promise;

async fn run(job: Job, signal: Option<AbortSignal>) -> SdkResult<Uint8Array> {
    let http = job.http()?;
    let (pos, params) = (job.pos(), job.params()?);
    let signal = signal.as_ref();
    match job.work {
        Work::Store { part } => {
            let job = StoreChunk { pos, params, part: Part::from_message(part)? };
            let chunk_ref = chunk::store(&http, Engine::best(), job, signal).await?;
            Ok(Uint8Array::from(&chunk_ref.to_bytes()[..]))
        }
        Work::Load { chunk_ref, sealed_len } => {
            let chunk_ref = coffer_core::manifest::ChunkRef::from_bytes(&chunk_ref, params)?;
            let job = LoadChunk { pos, params, chunk_ref, sealed_len: sealed_len as usize };
            chunk::load(&http, Engine::best(), job, signal).await
        }
    }
}

/// Runs one chunk job posted by the page (`coffer-worker.js` calls it); resolves to
/// the chunk's ref (stores) or plaintext (loads). Internal to the SDK.
#[wasm_bindgen(js_name = runWorkerJob, skip_typescript)]
pub fn run_worker_job(message: JsValue, signal: Option<AbortSignal>) -> Promise {
    let job =
        serde_wasm_bindgen::from_value::<Job>(message).map_err(|e| SdkError::invalid(format!("not a chunk job: {e}")));
    promise(async move { run(job?, signal).await })
}
