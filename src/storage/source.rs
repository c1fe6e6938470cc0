//! What `writeFile` reads from: a `Uint8Array`, or a `Blob`/`File` read slice by
//! slice so the whole file is never in memory at once.

use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::Blob;

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

    /// Bytes `[start, end)`, in a JS buffer.
    pub async fn read(&self, start: u64, end: u64) -> SdkResult<Uint8Array> {
        match self {
            Source::Bytes(bytes) => Ok(bytes.subarray(start as u32, end as u32)),
            Source::Blob(blob) => {
                let slice = blob
                    .slice_with_f64_and_f64(start as f64, end as f64)
                    .map_err(|e| SdkError::invalid(format!("cannot slice the Blob: {}", describe_js(&e))))?;
                let buffer = JsFuture::from(slice.array_buffer()).await.map_err(|e| {
                    SdkError::invalid(format!("cannot read the file (was it changed or removed?): {}", describe_js(&e)))
                })?;
                let bytes = Uint8Array::new(&buffer);
                if u64::from(bytes.length()) != end - start {
                    return Err(SdkError::invalid("the file changed size while it was being written"));
                }
                Ok(bytes)
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
