//! Lists that one bad entry cannot break. `space.list()`, `space.members()` and
//! `storage.listFiles()` return every entry that could be read; an entry that is
//! malformed or fails to authenticate is left out and described in the array's
//! `skipped` property (`{ id, code, message }[]`, non-enumerable, so the array still
//! looks, compares and serializes like a plain one). A failure of the call itself —
//! the network, the session — still rejects the promise.

use coffer_core::ErrorCode;
use coffer_core::proto::answer::Listed;
use js_sys::{Array, Object, Reflect};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::{SdkError, SdkResult};
use crate::js::to_js;

/// An entry left out (`SkippedEntry` in types.d.ts).
#[derive(Serialize)]
struct Skipped<'a> {
    /// `null` when the entry has no readable id.
    id: Option<&'a str>,
    code: &'a str,
    message: &'a str,
}

/// A list being built, with what was skipped.
#[derive(Default)]
pub struct Listing {
    /// The entries that could be read, in order.
    entries: Array,
    /// `{ id, code, message }` of each entry left out.
    skipped: Array,
}

/// Whether a failure is about one entry (it is skipped) rather than about the call.
fn about_the_entry(e: &SdkError) -> bool {
    matches!(e.code, ErrorCode::Integrity | ErrorCode::InvalidInput)
}

impl Listing {
    /// Adds an entry that was read.
    pub fn push(&self, entry: &JsValue) {
        self.entries.push(entry);
    }

    /// Records an entry left out, and why.
    pub fn skip(&self, id: Option<&str>, e: &SdkError) {
        self.skipped.push(&to_js(&Skipped { id, code: e.code.as_str(), message: &e.message }));
    }

    /// The entry, if it could be read; `None` if it was skipped for a reason of its
    /// own (it is malformed or does not authenticate); the error if the whole call
    /// failed.
    pub fn check<T>(&self, id: &str, entry: SdkResult<T>) -> SdkResult<Option<T>> {
        match entry {
            Ok(entry) => Ok(Some(entry)),
            Err(e) if about_the_entry(&e) => {
                self.skip(Some(id), &e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Adds the entry if it could be read (see [`Listing::check`]).
    pub fn add(&self, id: &str, entry: SdkResult<JsValue>) -> SdkResult<()> {
        if let Some(entry) = self.check(id, entry)? {
            self.push(&entry);
        }
        Ok(())
    }

    /// A list answer's element if it is well formed; a malformed one is skipped
    /// (`Integrity`: the accelerator sent what no valid answer holds).
    pub fn well_formed<T>(&self, listed: Listed<T>) -> Option<T> {
        match listed {
            Listed::Ok(entry) => Some(entry),
            Listed::Malformed { id, reason } => {
                let e =
                    SdkError::new(ErrorCode::Integrity, format!("the accelerator sent a malformed entry: {reason}"));
                self.skip(id.as_deref(), &e);
                None
            }
        }
    }

    /// The array handed to JS, with its `skipped` property (always there, maybe empty).
    pub fn finish(self) -> JsValue {
        // Not a result struct: a property descriptor, whose absent fields (enumerable,
        // writable, configurable) default to false.
        let descriptor = Object::new();
        let _ = Reflect::set(&descriptor, &"value".into(), &self.skipped);
        // Defining a new property on a fresh array cannot fail.
        Object::define_property(&self.entries, &"skipped".into(), &descriptor);
        self.entries.into()
    }
}

/// `path` with the query string asking for the page after `after` (SPEC.md §7.4).
pub fn page_path(path: &str, after: Option<&str>) -> String {
    match after {
        Some(after) => format!("{path}?after={}", js_sys::encode_uri_component(after)),
        None => path.to_owned(),
    }
}
