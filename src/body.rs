//! Reading an answer's body, never trusting it with memory: the bytes go, as they
//! arrive, into a [`Sink`] that knows the most a valid answer can hold (a JSON
//! answer's `Answer::MAX_BYTES`, a shard batch's exact length from the manifest) and
//! refuses the first byte past it; the rest of the body is then cancelled unread.
//! Nothing is sized from a declared length such as `Content-Length`, and not through
//! `response.arrayBuffer()`: a hostile accelerator may send a compressed body that
//! inflates without bound, and a page cannot see `Content-Encoding` across origins.
//!
//! Where the body is a byte stream (`fetch` bodies in current browsers) it is read
//! into a buffer of ours, reused and grown to [`MAX_PIECE`]: a 4 MiB shard batch
//! arrives in a handful of reads instead of the stream's ~60 own chunks, each a new
//! buffer and a promise (measured in Chromium: 4 MiB in 22 ms against 40 ms).
//! Elsewhere the stream's own chunks are taken. Either way each byte is copied once,
//! from where it arrived into its place in the sink.

use coffer_core::proto::answer::CappedBody;
use coffer_core::proto::storage::ShardBatchDecoder;
use js_sys::{ArrayBuffer, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, ReadableStream, ReadableStreamByobReader, ReadableStreamDefaultReader, Response};

use crate::copies;
use crate::error::{SdkError, SdkResult, describe_js};

/// The first read's buffer; a read that fills its buffer doubles the next one's.
const FIRST_PIECE: u32 = 64 * 1024;
/// The largest buffer a read fills.
const MAX_PIECE: u32 = 1024 * 1024;

/// Where an answer's bytes go as they arrive.
pub trait Sink {
    /// Takes the next `len` bytes, which `fill(at, into)` copies (bytes
    /// `at..at + into.len()` of them) straight into their place; refuses them — before
    /// any byte past a valid answer is copied — if no valid answer holds them.
    fn push_from(&mut self, len: usize, fill: impl FnMut(usize, &mut [u8])) -> SdkResult<()>;
}

impl Sink for CappedBody {
    fn push_from(&mut self, len: usize, fill: impl FnMut(usize, &mut [u8])) -> SdkResult<()> {
        Ok(CappedBody::push_from(self, len, fill)?)
    }
}

impl Sink for ShardBatchDecoder {
    fn push_from(&mut self, len: usize, fill: impl FnMut(usize, &mut [u8])) -> SdkResult<()> {
        Ok(ShardBatchDecoder::push_from(self, len, fill)?)
    }
}

/// A body's reader.
enum Reader {
    /// Reads into `buffer`, which each read hands back (a byte stream).
    Own { reader: ReadableStreamByobReader, buffer: ArrayBuffer },
    /// Takes the stream's own chunks.
    Stream(ReadableStreamDefaultReader),
}

impl Reader {
    fn new(body: &ReadableStream) -> Reader {
        match ReadableStreamByobReader::new(body) {
            Ok(reader) => Reader::Own { reader, buffer: ArrayBuffer::new(FIRST_PIECE) },
            // Not a byte stream: this browser's fetch bodies are not.
            Err(_) => Reader::Stream(body.get_reader().unchecked_into()),
        }
    }

    /// The next bytes of the body, `None` at its end. They are valid until the next
    /// call (a buffer of ours is read into again).
    async fn next(&mut self) -> Result<Option<Uint8Array>, JsValue> {
        let step = match self {
            Reader::Own { reader, buffer } => {
                let view = Uint8Array::new(buffer);
                JsFuture::from(reader.read_with_array_buffer_view(&view)).await?
            }
            Reader::Stream(reader) => JsFuture::from(reader.read()).await?,
        };
        let value = Reflect::get(&step, &"value".into())?;
        if let Reader::Own { buffer, .. } = self {
            // The read took our buffer and hands it back inside the view; a read that
            // filled it asks for a larger one.
            if let Some(view) = value.dyn_ref::<Uint8Array>() {
                let full = view.length() == view.buffer().byte_length();
                let size = view.buffer().byte_length();
                *buffer = if full && size < MAX_PIECE { ArrayBuffer::new(size * 2) } else { view.buffer() };
            }
        }
        if Reflect::get(&step, &"done".into())?.is_truthy() {
            return Ok(None);
        }
        Ok(Some(value.unchecked_into()))
    }

    /// Tells the browser to stop receiving what nobody will read. Cannot fail in a
    /// way that matters: the answer is refused anyway.
    fn cancel(&self) {
        let _ = match self {
            Reader::Own { reader, .. } => reader.cancel(),
            Reader::Stream(reader) => reader.cancel(),
        };
    }
}

fn broken_read(e: &JsValue, signal: Option<&AbortSignal>) -> SdkError {
    if signal.is_some_and(AbortSignal::aborted) {
        return SdkError::aborted();
    }
    SdkError::network(format!("the connection broke while reading an answer: {}", describe_js(e)))
}

/// Reads `response`'s body into `sink` as it arrives. On any refusal or failure the
/// body is cancelled.
pub async fn stream_into(response: &Response, sink: &mut impl Sink, signal: Option<&AbortSignal>) -> SdkResult<()> {
    let Some(body) = response.body() else { return Ok(()) };
    let mut reader = Reader::new(&body);
    let result = pump(&mut reader, sink, signal).await;
    if result.is_err() {
        reader.cancel();
    }
    result
}

/// Moves the body's bytes into `sink`, each copied once, straight into its place in
/// the sink's buffer (never past what the sink accepts).
async fn pump(reader: &mut Reader, sink: &mut impl Sink, signal: Option<&AbortSignal>) -> SdkResult<()> {
    while let Some(piece) = reader.next().await.map_err(|e| broken_read(&e, signal))? {
        sink.push_from(piece.length() as usize, |at, into| {
            piece.subarray(at as u32, (at + into.len()) as u32).copy_to(into);
            copies::copied(into.len());
        })?;
    }
    Ok(())
}

/// Reads at most `cap` bytes of `response`'s body.
pub async fn read_capped(response: &Response, cap: usize) -> SdkResult<Vec<u8>> {
    let mut body = CappedBody::new(cap);
    stream_into(response, &mut body, None).await?;
    Ok(body.into_bytes())
}
