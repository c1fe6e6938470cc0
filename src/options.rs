//! Reading the plain option objects JavaScript passes in, with errors that name the
//! field (`options.username must be a string`), not a serde type dump.

use wasm_bindgen::{JsCast, JsValue};

use crate::error::{SdkError, SdkResult};

/// An options object, or an error naming what it should have been.
pub struct Options {
    /// The object itself.
    object: JsValue,
    /// Its name in messages, e.g. `"signIn options"`.
    what: &'static str,
}

impl Options {
    /// Accepts any non-null object.
    pub fn new(value: &JsValue, what: &'static str) -> SdkResult<Self> {
        if !value.is_object() {
            return Err(SdkError::invalid(format!("{what} must be an object")));
        }
        Ok(Options { object: value.clone(), what })
    }

    /// An optional object: `undefined` and `null` become an empty object.
    pub fn optional(value: Option<JsValue>, what: &'static str) -> SdkResult<Self> {
        match value {
            Some(v) if !v.is_undefined() && !v.is_null() => Self::new(&v, what),
            _ => Ok(Options { object: js_sys::Object::new().into(), what }),
        }
    }

    fn field(&self, name: &str) -> JsValue {
        js_sys::Reflect::get(&self.object, &name.into()).unwrap_or(JsValue::UNDEFINED)
    }

    /// A required string field.
    pub fn string(&self, name: &str) -> SdkResult<String> {
        self.optional_string(name)?
            .ok_or_else(|| SdkError::invalid(format!("{}.{name} is required (a string)", self.what)))
    }

    /// An optional string field.
    pub fn optional_string(&self, name: &str) -> SdkResult<Option<String>> {
        let value = self.field(name);
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        value.as_string().map(Some).ok_or_else(|| SdkError::invalid(format!("{}.{name} must be a string", self.what)))
    }

    /// An optional boolean field.
    pub fn optional_bool(&self, name: &str) -> SdkResult<Option<bool>> {
        let value = self.field(name);
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        value
            .as_bool()
            .map(Some)
            .ok_or_else(|| SdkError::invalid(format!("{}.{name} must be true or false", self.what)))
    }

    /// An optional non-negative whole number field (below 2^53).
    pub fn optional_number(&self, name: &str) -> SdkResult<Option<f64>> {
        let value = self.field(name);
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        match value.as_f64() {
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => Ok(Some(n)),
            _ => Err(SdkError::invalid(format!("{}.{name} must be a whole number ≥ 0", self.what))),
        }
    }

    /// A field's raw value (`undefined` when absent).
    pub fn raw(&self, name: &str) -> JsValue {
        self.field(name)
    }

    /// An optional function field.
    pub fn optional_function(&self, name: &str) -> SdkResult<Option<js_sys::Function>> {
        let value = self.field(name);
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        value
            .dyn_into::<js_sys::Function>()
            .map(Some)
            .map_err(|_| SdkError::invalid(format!("{}.{name} must be a function", self.what)))
    }
}

/// A positional string argument, e.g. a collection name.
pub fn string_arg(value: &JsValue, name: &str) -> SdkResult<String> {
    value.as_string().ok_or_else(|| {
        let got = if value.is_undefined() {
            "undefined".to_owned()
        } else {
            value.js_typeof().as_string().unwrap_or_default()
        };
        SdkError::invalid(format!("{name} must be a string, got {got}"))
    })
}
