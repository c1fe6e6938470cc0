//! The option objects JavaScript passes in, read into typed structs
//! (`#[derive(Deserialize)]`, camelCase) through `serde-wasm-bindgen`, with errors
//! that name the call and the field (`signIn options.username must be a string`),
//! never serde's own (`invalid type: floating point `5`, expected a string`).
//!
//! [`read`] walks the struct's fields itself: a field that is absent or `undefined`
//! is missing, any other value goes through `serde_wasm_bindgen::Deserializer`. So an
//! error knows its field without a message being parsed. The field types below say
//! in their own words what they must be; values that stay JavaScript objects (a
//! callback, an `AbortSignal`, file data) cross untouched
//! (`serde_wasm_bindgen::preserve`) and are checked here.

use std::fmt;

use js_sys::{Function, Reflect};
use serde::de::{self, Deserialize, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::AbortSignal;

use crate::error::{SdkError, SdkResult, describe_js};

/// Reads an options object into `T`; `what` names it in errors (`"signIn options"`).
pub fn read<T: DeserializeOwned>(value: &JsValue, what: &str) -> SdkResult<T> {
    if !value.is_object() {
        return Err(SdkError::invalid(format!("{what} must be an object")));
    }
    T::deserialize(Object(value)).map_err(|e| {
        SdkError::invalid(match e {
            FieldError::Missing(field) => format!("{what}.{field} is required"),
            FieldError::Invalid(field, phrase) => format!("{what}.{field} {phrase}"),
            FieldError::Other(message) => format!("{what}: {message}"),
        })
    })
}

/// An optional options object: `undefined` and `null` read as `{}`.
pub fn read_optional<T: DeserializeOwned>(value: Option<JsValue>, what: &str) -> SdkResult<T> {
    match value {
        Some(value) if !value.is_undefined() && !value.is_null() => read(&value, what),
        _ => read(&js_sys::Object::new().into(), what),
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

/// A string field.
pub struct Text(pub String);

/// A `true`/`false` field.
pub struct Flag(pub bool);

/// A whole number ≥ 0 that a JS number holds exactly (below 2^53).
pub struct Whole(pub u64);

/// A function field (`onProgress`).
pub struct Callback(pub Function);

/// An `AbortSignal` field.
pub struct Signal(pub AbortSignal);

/// Reads a field as the JS value it is and keeps what `check` makes of it;
/// `phrase` says what it must be otherwise.
fn checked<'de, D: de::Deserializer<'de>, T>(
    deserializer: D,
    phrase: &str,
    check: impl FnOnce(JsValue) -> Option<T>,
) -> Result<T, D::Error> {
    let value: JsValue = serde_wasm_bindgen::preserve::deserialize(deserializer)?;
    check(value).ok_or_else(|| de::Error::custom(phrase))
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, "must be a string", |v| v.as_string().map(Text))
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, "must be true or false", |v| v.as_bool().map(Flag))
    }
}

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, "must be a whole number ≥ 0", |v| {
            let n = v.as_f64()?;
            (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0).then_some(Whole(n as u64))
        })
    }
}

impl<'de> Deserialize<'de> for Callback {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, "must be a function", |v| v.dyn_into().ok().map(Callback))
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        checked(deserializer, "must be an AbortSignal", |v| v.dyn_into().ok().map(Signal))
    }
}

/// Why an options object did not read; [`read`] words it.
#[derive(Debug)]
enum FieldError {
    /// A required field is absent.
    Missing(&'static str),
    /// A field holds something else; the phrase says what it must be.
    Invalid(&'static str, String),
    /// Anything else serde reports.
    Other(String),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Missing(field) => write!(f, "{field} is required"),
            FieldError::Invalid(field, phrase) => write!(f, "{field} {phrase}"),
            FieldError::Other(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        FieldError::Other(message.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        FieldError::Missing(field)
    }
}

/// An options object, as a deserializer of the struct it is read into.
struct Object<'a>(&'a JsValue);

impl<'de> de::Deserializer<'de> for Object<'_> {
    type Error = FieldError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldError> {
        visitor.visit_map(Fields { object: self.0, fields: fields.iter(), current: None })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, FieldError> {
        Err(FieldError::Other("options are read into structs only".into()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The struct's fields that the object holds, in the struct's order.
struct Fields<'a> {
    object: &'a JsValue,
    fields: std::slice::Iter<'static, &'static str>,
    /// The field whose key was just handed out, and its value.
    current: Option<(&'static str, JsValue)>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, FieldError> {
        for &field in self.fields.by_ref() {
            // A getter that throws reads as absent.
            let value = Reflect::get(self.object, &field.into()).unwrap_or(JsValue::UNDEFINED);
            if !value.is_undefined() {
                self.current = Some((field, value));
                return seed.deserialize(field.into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, FieldError> {
        let (field, value) = self.current.take().ok_or(FieldError::Other("a value without its field".into()))?;
        seed.deserialize(serde_wasm_bindgen::Deserializer::from(value))
            .map_err(|e| FieldError::Invalid(field, describe_js(&e.into())))
    }
}
