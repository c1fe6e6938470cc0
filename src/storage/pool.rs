//! Where chunks are sealed and opened: in a pool of module workers when the page can
//! start them (`browser.js`, one per core up to four, shared by every client of the
//! page), else right here. Either way the same code runs ([`chunk`](super::chunk));
//! the page keeps only the scheduling, the progress and the manifest.
//!
//! A job crosses as a [`Job`] message with the accelerator's URL and session token;
//! a Blob slice crosses as a handle (the worker reads it), bytes in a buffer of their
//! own that is transferred, not copied again. A read's plaintext comes back
//! transferred too. If no worker can start (no `Worker`, a cross-origin package, a
//! CSP that forbids it) the first job runs inline and so does every later one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use coffer_core::ErrorCode;
use coffer_core::chunk::ChunkPos;
use coffer_core::manifest::{ChunkRef, FileParams};
use js_sys::{Array, Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::AbortSignal;

use super::chunk::{self, LoadChunk, StoreChunk};
use super::cipher::Engine;
use crate::error::{SdkError, SdkResult, describe_js};
use crate::http::Http;

#[wasm_bindgen(module = "/src/browser.js")]
extern "C" {
    #[wasm_bindgen(js_name = poolSize)]
    fn pool_size() -> u32;

    #[wasm_bindgen(js_name = Pool)]
    type JsPool;
    #[wasm_bindgen(constructor)]
    fn new(size: u32, module: &JsValue) -> JsPool;
    #[wasm_bindgen(method)]
    fn run(this: &JsPool, id: u32, message: &JsValue, transfer: &Array) -> Promise;
    #[wasm_bindgen(method)]
    fn cancel(this: &JsPool, id: u32);
    #[wasm_bindgen(method)]
    fn stats(this: &JsPool) -> JsValue;

    #[wasm_bindgen(js_name = abortable)]
    fn abortable_promise(promise: Promise, signal: Option<AbortSignal>) -> Promise;
}

/// A chunk job as it crosses to a worker.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The accelerator's base URL.
    pub base: String,
    /// The session token, for uploads.
    pub token: Option<String>,
    /// 0 for a data chunk, else the table level.
    pub level: u8,
    /// The chunk's (or node's) index.
    pub index: u64,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Data shards per chunk.
    pub data_shards: u8,
    /// Parity shards per chunk.
    pub parity_shards: u8,
    /// What to do.
    pub work: Work,
}

/// A job's own part.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Work {
    /// Seal and upload these bytes (a `Uint8Array` or a `Blob`).
    Store {
        /// The bytes, as [`Part::to_message`](super::source::Part::to_message) posts them.
        #[serde(with = "serde_wasm_bindgen::preserve")]
        part: JsValue,
    },
    /// Fetch and open the chunk this ref names.
    Load {
        /// The chunk's ref, in its binary form.
        #[serde(with = "serde_bytes")]
        chunk_ref: Vec<u8>,
        /// What its shards rebuild.
        sealed_len: u32,
    },
}

impl Job {
    fn new(http: &Http, pos: ChunkPos, params: FileParams, work: Work) -> Job {
        let (level, index) = match pos {
            ChunkPos::Data(index) => (0, index),
            ChunkPos::Table { level, index } => (level, index),
        };
        Job {
            base: http.base().to_owned(),
            token: http.token(),
            level,
            index,
            chunk_size: params.chunk_size,
            data_shards: params.data_shards,
            parity_shards: params.parity_shards,
            work,
        }
    }

    /// Its position in the chunk tree.
    pub fn pos(&self) -> ChunkPos {
        if self.level == 0 {
            ChunkPos::Data(self.index)
        } else {
            ChunkPos::Table { level: self.level, index: self.index }
        }
    }

    /// The file's parameters, checked.
    pub fn params(&self) -> SdkResult<FileParams> {
        let params = FileParams {
            chunk_size: self.chunk_size,
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
        };
        params.check()?;
        Ok(params)
    }

    /// A connection like the page's.
    pub fn http(&self) -> SdkResult<Http> {
        let http = Http::new(&self.base)?;
        http.set_token(self.token.clone());
        Ok(http)
    }
}

/// The page's workers, or why there are none.
enum State {
    Untried,
    Running(Rc<Workers>),
    Inline,
}

thread_local! {
    static STATE: RefCell<State> = const { RefCell::new(State::Untried) };
}

struct Workers {
    pool: JsPool,
    next_id: Cell<u32>,
}

fn workers() -> Option<Rc<Workers>> {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        if let State::Untried = *state {
            let size = pool_size();
            *state = if size == 0 {
                State::Inline
            } else {
                State::Running(Rc::new(Workers {
                    pool: JsPool::new(size, &wasm_bindgen::module()),
                    next_id: Cell::new(1),
                }))
            };
        }
        match &*state {
            State::Running(workers) => Some(Rc::clone(workers)),
            _ => None,
        }
    })
}

fn run_inline_from_now_on(reason: &str) {
    web_sys::console::warn_1(&format!("Coffer: {reason}; sealing and opening files on the page instead").into());
    STATE.with(|state| *state.borrow_mut() = State::Inline);
}

/// Cancels a job whose caller stopped waiting (aborted, or another chunk failed).
struct Running<'a> {
    workers: &'a Workers,
    id: u32,
    finished: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.workers.pool.cancel(self.id);
        }
    }
}

impl Workers {
    /// Runs `job` on a worker; `Ok(None)` when no worker could start.
    async fn run(&self, job: &Job, transfer: &Array, signal: Option<&AbortSignal>) -> SdkResult<Option<JsValue>> {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1).max(1));
        let message = serde_wasm_bindgen::to_value(job)
            .map_err(|e| SdkError::new(ErrorCode::Internal, format!("a chunk job did not serialize: {e}")))?;
        let mut running = Running { workers: self, id, finished: false };
        let answer = abortable(self.pool.run(id, &message, transfer), signal).await;
        // An abort answers before the worker does: that job is still running there.
        running.finished = answer.is_ok();
        match answer {
            Ok(value) => Ok(Some(value)),
            Err(e) if code_name(&e).as_deref() == Some("Unavailable") => {
                run_inline_from_now_on(&describe_js(&e));
                Ok(None)
            }
            Err(e) => Err(worker_error(&e)),
        }
    }
}

fn code_name(error: &JsValue) -> Option<String> {
    js_sys::Reflect::get(error, &"code".into()).ok()?.as_string()
}

/// A worker's refusal as the error it was there (its code and message).
fn worker_error(error: &JsValue) -> SdkError {
    let code = code_name(error).and_then(|name| ErrorCode::from_name(&name)).unwrap_or(ErrorCode::Internal);
    SdkError::new(code, describe_js(error))
}

/// `promise`, or `Aborted` as soon as `signal` fires.
async fn abortable(promise: Promise, signal: Option<&AbortSignal>) -> Result<JsValue, JsValue> {
    JsFuture::from(abortable_promise(promise, signal.cloned())).await
}

/// Seals and uploads one chunk, on a worker if the page has them.
pub async fn store(http: &Http, job: StoreChunk, signal: Option<&AbortSignal>) -> SdkResult<ChunkRef> {
    if let Some(workers) = workers() {
        let (part, buffer) = job.part.to_message();
        let transfer = Array::new();
        if let Some(buffer) = buffer {
            transfer.push(&buffer);
        }
        let message = Job::new(http, job.pos, job.params, Work::Store { part });
        if let Some(answer) = workers.run(&message, &transfer, signal).await? {
            let bytes = answer.dyn_into::<Uint8Array>().map_err(|_| not_bytes())?.to_vec();
            return Ok(ChunkRef::from_bytes(&bytes, job.params)?);
        }
    }
    chunk::store(http, Engine::best(), job, signal).await
}

/// Fetches and opens one chunk, on a worker if the page has them.
pub async fn load(http: &Http, job: LoadChunk, signal: Option<&AbortSignal>) -> SdkResult<Uint8Array> {
    if let Some(workers) = workers() {
        let work = Work::Load { chunk_ref: job.chunk_ref.to_bytes(), sealed_len: job.sealed_len as u32 };
        let message = Job::new(http, job.pos, job.params, work);
        if let Some(answer) = workers.run(&message, &Array::new(), signal).await? {
            return answer.dyn_into::<Uint8Array>().map_err(|_| not_bytes());
        }
    }
    chunk::load(http, Engine::best(), job, signal).await
}

fn not_bytes() -> SdkError {
    SdkError::new(ErrorCode::WorkerFailed, "a Coffer file worker answered with something other than bytes")
}

/// For `scripts/bench`: `{ workers, started, wasmBytes, peakWasmBytes, copiedBytes }`
/// of the page's file workers (`null` when chunks run inline). Internal.
#[wasm_bindgen(js_name = fileWorkerStats, skip_typescript)]
pub fn file_worker_stats() -> JsValue {
    STATE.with(|state| match &*state.borrow() {
        State::Running(workers) => workers.pool.stats(),
        _ => JsValue::NULL,
    })
}
