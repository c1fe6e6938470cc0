//! Reading a file from its manifest: walk the chunk tree in file order, fetch and
//! rebuild each chunk (a few at once, on workers where the page has them), open it,
//! and hand the plaintext out as one `Uint8Array`, a `Blob`, or a `ReadableStream`
//! pulled a chunk at a time.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use coffer_core::ErrorCode;
use coffer_core::chunk::ChunkPos;
use coffer_core::pipeline::{ChunkWalk, Step};
use futures_util::StreamExt;
use futures_util::stream::{self, LocalBoxStream};
use js_sys::{Array, Function, Promise, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::{AbortSignal, Blob, BlobPropertyBag};

use super::chunk::LoadChunk;
use super::pool;
use super::shards::check_abort;
use crate::copies;
use crate::error::{SdkError, SdkResult};
use crate::js::report_progress;
use crate::options::Text;
use crate::session::Session;

/// Chunks fetched and opened ahead of the reader.
const IN_FLIGHT: usize = 6;
/// Largest file returned as one `Uint8Array`; larger ones need `as: "blob" | "stream"`.
const MAX_BYTES_OUTPUT: u64 = 2 * 1024 * 1024 * 1024;

#[wasm_bindgen(module = "/src/browser.js")]
extern "C" {
    #[wasm_bindgen(js_name = pullStream)]
    fn pull_stream(pull: &Function, cancel: &Function) -> JsValue;
}

/// How `readFile` hands the bytes over: the `as` option, `"bytes"` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "Text")]
pub enum Output {
    /// One `Uint8Array` (default).
    #[default]
    Bytes,
    /// A `Blob` (the browser may keep it on disk).
    Blob,
    /// A `ReadableStream<Uint8Array>`, one chunk per pull.
    Stream,
}

impl TryFrom<Text> for Output {
    type Error = String;

    fn try_from(Text(name): Text) -> Result<Self, String> {
        match name.as_str() {
            "bytes" => Ok(Output::Bytes),
            "blob" => Ok(Output::Blob),
            "stream" => Ok(Output::Stream),
            other => Err(format!("must be \"bytes\", \"blob\" or \"stream\", not {other:?}")),
        }
    }
}

/// Walks the chunk tree, opening table nodes as it meets them.
struct Walker {
    session: Rc<Session>,
    walk: ChunkWalk,
    signal: Option<AbortSignal>,
    /// Set after an error: the stream ends there.
    failed: bool,
}

impl Walker {
    /// The next data chunk to load, and the part of its plaintext to keep.
    async fn next_data(&mut self) -> SdkResult<Option<(LoadChunk, Range<usize>)>> {
        let params = self.walk.manifest().params();
        loop {
            match self.walk.next_step()? {
                None => return Ok(None),
                Some(Step::Data { index, chunk_ref, sealed_len, keep }) => {
                    return Ok(Some((LoadChunk { pos: ChunkPos::Data(index), params, chunk_ref, sealed_len }, keep)));
                }
                Some(Step::Table { pos, chunk_ref, sealed_len }) => {
                    let job = LoadChunk { pos, params, chunk_ref, sealed_len };
                    let plain = pool::load(&self.session.http, job, self.signal.as_ref()).await?;
                    self.walk.table_opened(&plain.to_vec())?;
                }
            }
        }
    }
}

/// The plaintext the walk covers, a chunk (or the part of one in its range) at a
/// time, in order.
pub fn chunks(
    session: Rc<Session>,
    walk: ChunkWalk,
    signal: Option<AbortSignal>,
) -> LocalBoxStream<'static, SdkResult<Uint8Array>> {
    let walker = Walker { session: Rc::clone(&session), walk, signal: signal.clone(), failed: false };
    let steps = stream::unfold(walker, |mut w| async move {
        if w.failed {
            return None;
        }
        match w.next_data().await {
            Ok(Some(step)) => Some((Ok(step), w)),
            Ok(None) => None,
            Err(e) => {
                w.failed = true;
                Some((Err(e), w))
            }
        }
    });
    steps
        .map(move |step| {
            let session = Rc::clone(&session);
            let signal = signal.clone();
            async move {
                let (job, keep) = step?;
                check_abort(signal.as_ref())?;
                let plain = pool::load(&session.http, job, signal.as_ref()).await?;
                // A view, not a copy: whole chunks keep all of it.
                Ok(if keep.len() == plain.length() as usize {
                    plain
                } else {
                    plain.subarray(keep.start as u32, keep.end as u32)
                })
            }
        })
        .buffered(IN_FLIGHT)
        .boxed_local()
}

/// Reads the bytes the walk covers (the whole file, or a range of it) into the
/// requested output.
pub async fn read(
    session: Rc<Session>,
    walk: ChunkWalk,
    output: Output,
    mime: Option<String>,
    progress: Option<Function>,
    signal: Option<AbortSignal>,
) -> SdkResult<JsValue> {
    let size = walk.bytes().end - walk.bytes().start;
    if output == Output::Bytes && size > MAX_BYTES_OUTPUT {
        return Err(SdkError::new(
            ErrorCode::TooLarge,
            format!(
                "this read is {size} bytes, too large for one Uint8Array: read it with {{ as: \"blob\" }} or {{ as: \"stream\" }}, or a smaller range"
            ),
        ));
    }
    let mut parts = chunks(session, walk, signal);
    match output {
        Output::Stream => Ok(stream_of(parts, size, progress)),
        Output::Bytes => {
            let out = Uint8Array::new_with_length(size as u32);
            let mut done = 0u64;
            report_progress(progress.as_ref(), 0, size);
            while let Some(chunk) = parts.next().await {
                let chunk = chunk?;
                out.set(&chunk, done as u32);
                copies::copied(chunk.length() as usize);
                done += u64::from(chunk.length());
                report_progress(progress.as_ref(), done, size);
            }
            Ok(out.into())
        }
        Output::Blob => {
            let list = Array::new();
            let mut done = 0u64;
            report_progress(progress.as_ref(), 0, size);
            while let Some(chunk) = parts.next().await {
                let chunk = chunk?;
                done += u64::from(chunk.length());
                list.push(&chunk);
                report_progress(progress.as_ref(), done, size);
            }
            let bag = BlobPropertyBag::new();
            if let Some(mime) = mime {
                bag.set_type(&mime);
            }
            let blob = Blob::new_with_u8_array_sequence_and_options(&list, &bag)
                .map_err(|e| SdkError::new(ErrorCode::Internal, crate::error::describe_js(&e)))?;
            Ok(blob.into())
        }
    }
}

/// A `ReadableStream` that pulls one chunk at a time; errors reach the stream's reader.
fn stream_of(parts: LocalBoxStream<'static, SdkResult<Uint8Array>>, size: u64, progress: Option<Function>) -> JsValue {
    let state = Rc::new(RefCell::new(Some((parts, 0u64))));
    let pull_state = Rc::clone(&state);
    let pull = Closure::<dyn FnMut() -> Promise>::new(move || {
        let state = Rc::clone(&pull_state);
        let progress = progress.clone();
        future_to_promise(async move {
            // Taken out for the await, so no borrow is held while JS runs.
            let Some((mut parts, mut done)) = state.borrow_mut().take() else {
                return Ok(JsValue::NULL);
            };
            match parts.next().await {
                None => Ok(JsValue::NULL),
                Some(Err(e)) => Err(e.into()),
                Some(Ok(chunk)) => {
                    done += u64::from(chunk.length());
                    report_progress(progress.as_ref(), done, size);
                    *state.borrow_mut() = Some((parts, done));
                    Ok(chunk.into())
                }
            }
        })
    });
    let cancel = Closure::<dyn FnMut()>::new(move || {
        state.borrow_mut().take();
    });
    pull_stream(&pull.into_js_value().unchecked_into(), &cancel.into_js_value().unchecked_into())
}
