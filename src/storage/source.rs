//! What `writeFile` reads from: a `Uint8Array`, or a `Blob`/`File` read slice by
//! slice so the whole file is never in memory at once. A [`Part`] is one chunk's
//! slice, read where the chunk is sealed (on the page or in a worker).

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

use crate::copies;
use crate::error::{SdkError, SdkResult, describe_js};

/// The bytes being written.
pub enum Source {
    /// Already in memory.
    Bytes(Uint8Array),
    /// Read a slice at a time.
    Blob(Blob),
}

impl Source {
    /// Accepts `Uint8Array | Blob | File` (a `File` is a `Blob`).
    pub fn from_js(data: &JsValue) -> SdkResult<Source> {
        if let Some(bytes) = data.dyn_ref::<Uint8Array>() {
            return Ok(Source::Bytes(bytes.clone()));
        }
        if let Some(blob) = data.dyn_ref::<Blob>() {
            return Ok(Source::Blob(blob.clone()));
        }
        if data.is_instance_of::<js_sys::ArrayBuffer>() {
            return Ok(Source::Bytes(Uint8Array::new(data)));
        }
        Err(SdkError::invalid("data must be a Uint8Array, a Blob or a File"))
    }

    /// Total bytes.
    pub fn size(&self) -> u64 {
        match self {
            Source::Bytes(bytes) => u64::from(bytes.length()),
            Source::Blob(blob) => blob.size() as u64,
        }
    }

    /// Bytes `[start, end)`, not yet read.
    pub fn part(&self, start: u64, end: u64) -> SdkResult<Part> {
        match self {
            Source::Bytes(bytes) => Ok(Part::Bytes(bytes.subarray(start as u32, end as u32))),
            Source::Blob(blob) => {
                let slice = blob
                    .slice_with_f64_and_f64(start as f64, end as f64)
                    .map_err(|e| SdkError::invalid(format!("cannot slice the Blob: {}", describe_js(&e))))?;
                Ok(Part::Blob(slice))
            }
        }
    }

    /// `{ name, type }` of a `File`, `{ type }` of a typed `Blob`, for default metadata.
    pub fn default_metadata(&self) -> JsValue {
        let out = js_sys::Object::new();
        if let Source::Blob(blob) = self {
            if let Some(file) = blob.dyn_ref::<web_sys::File>() {
                let _ = js_sys::Reflect::set(&out, &"name".into(), &file.name().into());
            }
            let kind = blob.type_();
            if !kind.is_empty() {
                let _ = js_sys::Reflect::set(&out, &"type".into(), &kind.into());
            }
        }
        out.into()
    }
}

/// One chunk's bytes, not yet read: a view of the caller's bytes, or a slice of
/// their Blob (a handle: reading it is what costs).
pub enum Part {
    /// Bytes in memory.
    Bytes(Uint8Array),
    /// A slice of a Blob or File.
    Blob(Blob),
}

impl Part {
    /// A table node's plaintext.
    pub fn from_vec(bytes: &[u8]) -> Part {
        Part::Bytes(Uint8Array::from(bytes))
    }

    /// Reads the bytes (a Blob slice from the browser's store; bytes as they are).
    pub async fn read(self) -> SdkResult<Uint8Array> {
        match self {
            Part::Bytes(bytes) => Ok(bytes),
            Part::Blob(slice) => {
                let expected = slice.size();
                let buffer = JsFuture::from(slice.array_buffer()).await.map_err(|e| {
                    SdkError::invalid(format!("cannot read the file (was it changed or removed?): {}", describe_js(&e)))
                })?;
                let bytes = Uint8Array::new(&buffer);
                if f64::from(bytes.length()) != expected {
                    return Err(SdkError::invalid("the file changed size while it was being written"));
                }
                copies::copied(bytes.length() as usize);
                Ok(bytes)
            }
        }
    }

    /// What to post to a worker, and the buffer to transfer with it: bytes are copied
    /// into a buffer of their own (the caller's must stay theirs), a Blob slice is
    /// posted as the handle it is.
    pub fn to_message(&self) -> (JsValue, Option<ArrayBuffer>) {
        match self {
            Part::Bytes(bytes) => {
                let own = bytes.slice(0, bytes.length());
                copies::copied(own.length() as usize);
                let buffer = own.buffer();
                (own.into(), Some(buffer))
            }
            Part::Blob(slice) => (slice.clone().into(), None),
        }
    }

    /// A part posted by [`to_message`](Self::to_message).
    pub fn from_message(value: JsValue) -> SdkResult<Part> {
        match value.dyn_into::<Uint8Array>() {
            Ok(bytes) => Ok(Part::Bytes(bytes)),
            Err(value) => value
                .dyn_into::<Blob>()
                .map(Part::Blob)
                .map_err(|_| SdkError::invalid("a chunk's bytes must be a Uint8Array or a Blob")),
        }
    }
}
